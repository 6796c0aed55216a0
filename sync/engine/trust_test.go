package engine

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// A tag deleted at the destination behind the ledger's back: the default
// engine confirms each destination with one HEAD and copies it again;
// TrustLedger believes the ledger and sends the destination nothing.
func TestLedgerConfirmedUnlessTrusted(t *testing.T) {
	src, _ := memRegistry(t)
	var dstRequests atomic.Int64
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dstRequests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	dst := strings.TrimPrefix(srv.URL, "http://")
	want := pushIndex(t, src+"/ns/app:v1")
	ctx := context.Background()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	run := func(trust bool) *Result {
		t.Helper()
		e := newEngine(t, Options{Ledger: l, TrustLedger: trust})
		jobs, _, err := e.Expand(ctx, []rules.Rule{ruleFor(t, src+"/ns/app:v1", dst+"/mirror/app")})
		if err != nil {
			t.Fatal(err)
		}
		return e.Sync(ctx, jobs, nil)
	}
	if res := run(false); res.Summary.Copied != 1 {
		t.Fatalf("first sync: %+v", res.Summary)
	}
	// The in-memory registry deletes a tag alone.
	if err := remote.Delete(mustRef(t, dst+"/mirror/app:v1")); err != nil {
		t.Fatal(err)
	}

	dstRequests.Store(0)
	if res := run(true); res.Summary.Skipped != 1 || dstRequests.Load() != 0 {
		t.Errorf("TrustLedger: %+v with %d destination requests; want skipped, none", res.Summary, dstRequests.Load())
	}
	if res := run(false); res.Summary.Copied != 1 || res.Jobs[0].Digest != want.String() {
		t.Fatalf("default: %+v (%v); want the deleted tag copied again", res.Summary, res.Jobs[0].Err)
	}
	if got, err := remote.Head(mustRef(t, dst+"/mirror/app:v1")); err != nil || got.Digest != want {
		t.Fatalf("destination digest %v, want %v (%v)", got, want, err)
	}
	dstRequests.Store(0)
	if res := run(false); res.Summary.Skipped != 1 || dstRequests.Load() == 0 {
		t.Errorf("default no-op: %+v with %d destination requests; want skipped after asking", res.Summary, dstRequests.Load())
	}
}
