package engine

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
)

// uploadSlot is one destination of an upload.
type uploadSlot struct {
	dst      Store
	location string // an open upload session, or "" to open one
	n        int64  // bytes uploaded
	err      error
	image    string       // progress: the image these bytes count for
	sent     atomic.Int64 // progress: bytes reported in this attempt
}

// upload streams the blob from src into every slot's destination with one
// read of the source: no disk, no whole-blob buffer, the digest checked as it
// streams so a corrupt read never completes a PUT. Slots that fail
// transiently restart together from a fresh read (three attempts in all).
func (x *transfer) upload(ctx context.Context, src Store, b oci.Blob, slots []*uploadSlot, pre *prefetch) {
	if pre == nil {
		if err := x.sem.acquire(ctx); err != nil {
			for _, s := range slots {
				s.err = err
				s.dst.CancelUpload(ctx, s.location)
			}
			return
		}
	}
	defer x.sem.release()
	for _, s := range slots {
		s.image = x.work.uploading(ctx, blobKey(s.dst, b.Digest), b.Size)
	}
	if ru, ok := x.resumable(b, slots); ok {
		if x.uploadResumable(ctx, src, b, slots[0], ru, pre) {
			s := slots[0]
			if s.err != nil {
				x.work.bytes(s.image, -s.sent.Swap(0))
				return
			}
			x.uploaded.Add(1)
			x.bytes.Add(s.n)
			x.work.uploaded(blobKey(s.dst, b.Digest))
			return
		}
		pre = nil // used up: the upload below reads afresh
	}
	pending := slots
	for attempt := 0; attempt < 3 && len(pending) > 0; attempt++ {
		if attempt > 0 {
			for _, s := range pending {
				x.log.Debug("restarting upload", "digest", b.Digest, "into", s.dst.String(), "error", s.err)
				s.location = ""
			}
		}
		x.uploadOnce(ctx, src, b, pending, pre)
		pre = nil // a later attempt reads afresh
		var again []*uploadSlot
		for _, s := range pending {
			if s.err != nil { // its bytes were not uploaded after all
				x.work.bytes(s.image, -s.sent.Swap(0))
			}
			switch {
			case s.err == nil:
				x.uploaded.Add(1)
				x.bytes.Add(s.n)
				x.work.uploaded(blobKey(s.dst, b.Digest))
			case !client.IsPermanent(s.err) && ctx.Err() == nil:
				again = append(again, s)
			}
		}
		pending = again
	}
}

// uploadOnce is one attempt: open the sessions, one GET, and one PUT per
// destination fed from it (through a pipe each when there are several).
// The GET goes out with the session POSTs, not after them (pre: it went out
// even earlier, with the blob's check): one round trip, not two.
func (x *transfer) uploadOnce(ctx context.Context, src Store, b oci.Blob, slots []*uploadSlot, pre *prefetch) {
	if pre == nil {
		pre = startPrefetch(ctx, src, b.Digest)
	}
	var live []*uploadSlot
	for _, s := range slots {
		s.err, s.n = nil, 0
		if s.location == "" {
			loc, _, err := s.dst.StartUpload(ctx, b.Digest, "")
			if err != nil {
				s.err = err
				continue
			}
			s.location = loc
		}
		live = append(live, s)
	}
	if len(live) == 0 {
		pre.discard()
		return
	}
	failAll := func(err error) {
		for _, s := range live {
			s.err = err
			s.dst.CancelUpload(ctx, s.location) // abandoned: nothing will be sent to it
			s.location = ""
		}
	}
	rc, size, err := pre.wait()
	if err != nil {
		failAll(fmt.Errorf("reading from %s: %w", src, err))
		return
	}
	defer func() { rc.Close() }()
	if size >= 0 && b.Size > 0 && size != b.Size {
		failAll(oci.Permanent(fmt.Errorf("source sent %d bytes, the manifest says %d", size, b.Size)))
		return
	}
	if size < 0 {
		size = b.Size
	}
	// A read cut midway resumes from the byte it reached (resumingReader).
	rc = newResumingReader(ctx, src, b.Digest, size, rc, func(offset, reread int64) {
		x.readsResumed.Add(1)
		x.bytesReread.Add(reread)
		x.log.Debug("resuming a cut blob read", "digest", b.Digest, "from", src.String(), "offset", offset, "reread", reread)
	})
	vr, err := newVerifier(rc, b.Digest, size)
	if err != nil {
		failAll(err)
		return
	}
	if x.opt.OnPlanned != nil {
		x.opt.OnPlanned(b.Size * int64(len(live)))
	}
	copies := int64(len(live))
	vr.progress = func(n int64) {
		x.sem.moved(n) // what the gate learns its limit from, as the bytes move
		if x.opt.OnBytes != nil {
			x.opt.OnBytes(n * copies)
		}
		for _, s := range live {
			s.sent.Add(n)
			x.work.bytes(s.image, n)
		}
	}
	if len(live) == 1 {
		s := live[0]
		if s.err = s.dst.PutUpload(ctx, s.location, b.Digest, size, vr); s.err == nil {
			s.n = vr.n
		} else if vr.err != nil {
			s.err = vr.err
		}
		return
	}
	fanOut(ctx, vr, b.Digest, size, live)
}

// prefetch is a source blob GET sent ahead of the moment its body is
// read: with the upload session's POST, or with the blob's check.
type prefetch struct {
	done chan struct{}
	rc   io.ReadCloser
	size int64
	err  error
}

func startPrefetch(ctx context.Context, src Store, digest string) *prefetch {
	p := &prefetch{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.rc, p.size, p.err = src.GetBlob(ctx, digest)
	}()
	return p
}

// wait returns the GET's answer.
func (p *prefetch) wait() (io.ReadCloser, int64, error) {
	<-p.done
	return p.rc, p.size, p.err
}

// discard abandons the GET (its body unread).
func (p *prefetch) discard() {
	if p == nil {
		return
	}
	if rc, _, err := p.wait(); err == nil {
		rc.Close()
	}
}
