package engine

import (
	"context"
	"sync"
	"testing"

	"github.com/imagesync/imagesync/sync/rules"
)

// progressLog collects the engine's progress events in arrival order.
type progressLog struct {
	mu     sync.Mutex
	events []Progress
}

func (l *progressLog) add(p Progress) {
	l.mu.Lock()
	l.events = append(l.events, p)
	l.mu.Unlock()
}

// The bytes to upload are known when the last image is resolved, before
// any upload; they only shrink afterwards (blobs found present), never drop
// below what is uploaded, and end equal to it.
func TestProgressTotalsOnlyShrink(t *testing.T) {
	src, _ := memRegistry(t)
	dst, _ := memRegistry(t)
	pushIndex(t, src+"/ns/app:v1")
	pushIndex(t, src+"/ns/other:v1")
	ctx := context.Background()

	// mirror/app already holds app's blobs (under v0): a second tag of the
	// same image needs none of them, which only its blob HEADs find out.
	first := newEngine(t, Options{})
	jobs, _, err := first.Expand(ctx, []rules.Rule{ruleFor(t, src+"/ns/app:v1", dst+"/mirror/app:v0")})
	if err != nil {
		t.Fatal(err)
	}
	if res := first.Sync(ctx, jobs, nil); res.Summary.Copied != 1 {
		t.Fatalf("seeding: %+v", res.Summary)
	}

	var log progressLog
	e := newEngine(t, Options{OnProgress: log.add})
	jobs, _, err = e.Expand(ctx, []rules.Rule{
		ruleFor(t, src+"/ns/app:v1", dst+"/mirror/app:v1"),
		ruleFor(t, src+"/ns/other:v1", dst+"/mirror/other"),
	})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Sync(ctx, jobs, nil)
	if res.Summary.Copied != 2 {
		t.Fatalf("%+v", res.Summary)
	}

	var work, done, atReady int64
	ready, started := false, map[string]int{}
	for i, ev := range log.events {
		switch ev.Kind {
		case ProgressReady:
			ready, atReady = true, work
		case ProgressStarted:
			if !ready {
				t.Fatalf("event %d: %s started before every image was resolved", i, ev.Image)
			}
			started[ev.Image]++
		case ProgressFinished:
			started[ev.Image]--
		case ProgressBytes:
			if ready && ev.Work > 0 {
				t.Errorf("event %d: the total grew by %d after it was known", i, ev.Work)
			}
			if !ready && ev.Done != 0 {
				t.Errorf("event %d: bytes uploaded before every image was resolved", i)
			}
			work += ev.Work
			done += ev.Done
			if done > work {
				t.Errorf("event %d: %d bytes done of %d", i, done, work)
			}
		}
	}
	if work != done || done != res.Summary.Bytes || done == 0 {
		t.Errorf("end: total %d, done %d, uploaded %d", work, done, res.Summary.Bytes)
	}
	if atReady <= work {
		t.Errorf("the total did not shrink for the blobs mirror/app already had: %d at the start, %d at the end", atReady, work)
	}
	for im, n := range started {
		if n != 0 {
			t.Errorf("%s: %d more starts than finishes", im, n)
		}
	}
}
