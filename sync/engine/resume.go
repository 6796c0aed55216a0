package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/imagesync/imagesync/registry/client"
)

// Bounds of a resumed blob read (resumingReader).
const (
	// maxStalledResumes is how many resumes in a row may bring no byte
	// before the read fails (the upload's restarts take over).
	maxStalledResumes = 5
	// maxResumes bounds the resumes of one read in all, progress or not.
	maxResumes = 100
	// resumeBackoff is the wait before the second resume without progress,
	// doubled for each further one, up to maxResumeBackoff; the first
	// resume after progress does not wait.
	resumeBackoff    = 100 * time.Millisecond
	maxResumeBackoff = 2 * time.Second
)

// resumingReader reads a blob from a store that can open it at an offset
// (blobRanger) and, when the read is cut by a transient error (not EOF,
// not a permanent error, the context alive), opens it again from the byte
// it reached and goes on: the uploads it feeds never see the cut. It sits
// under the verifier, which still hashes the whole stream: bytes a
// resumed answer gets wrong fail the digest check, as a corrupt first
// read does.
//
// A store that ignores the Range and sends the whole blob again (a 200)
// is not given up on: the bytes before the offset are read and dropped
// (onResume's reread), since that costs the source what a fresh read
// would and spares every destination its restart. Resumes are bounded
// (maxStalledResumes without progress, maxResumes in all); when they run
// out, or a resumed answer is refused (client.Repo.GetBlobFrom checks it),
// the read fails with the cut and the reason, and upload's restarts from
// a fresh read remain the fallback.
type resumingReader struct {
	ctx    context.Context
	ranger blobRanger
	digest string
	size   int64 // the blob's size: where the read must end

	// mu guards rc and closed: a PUT's transport may still read its body
	// when the upload that owns the reader closes it.
	mu     sync.Mutex
	rc     io.ReadCloser // the read in progress; nil between two, or closed
	closed bool

	n        int64 // bytes passed on: the offset to resume from
	stalled  int   // resumes since a byte was last passed on
	resumes  int
	err      error                      // the read failed for good: every Read returns it
	onResume func(offset, reread int64) // counts and logs each resume, with the bytes it dropped
}

// newResumingReader wraps the first read of a blob; where the store
// cannot open a blob at an offset, or the size is unknown, it returns rc
// as it is.
func newResumingReader(ctx context.Context, src Store, digest string, size int64, rc io.ReadCloser, onResume func(offset, reread int64)) io.ReadCloser {
	ranger, ok := src.(blobRanger)
	if !ok || size <= 0 {
		return rc
	}
	return &resumingReader{ctx: ctx, ranger: ranger, digest: digest, size: size, rc: rc, onResume: onResume}
}

func (r *resumingReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		r.mu.Lock()
		rc := r.rc
		r.mu.Unlock()
		if rc == nil {
			return 0, errReadClosed
		}
		k, err := rc.Read(p)
		r.n += int64(k)
		if k > 0 {
			r.stalled = 0
		}
		if err == nil || err == io.EOF || !r.resumable(err) {
			return k, err
		}
		if r.err = r.resume(err); r.err != nil {
			return k, r.err
		}
		if k > 0 {
			return k, nil
		}
	}
}

// resumable says whether a read error may be resumed from: a transient
// one, with bytes left to read and the context alive.
func (r *resumingReader) resumable(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.closed && r.ctx.Err() == nil && !client.IsPermanent(err) && r.n < r.size
}

// resume replaces the cut read with one from offset r.n, or says why it
// could not: the cut, and why the last resume failed.
func (r *resumingReader) resume(cut error) error {
	r.mu.Lock()
	old := r.rc
	r.rc = nil
	r.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	var last error
	for {
		if r.stalled >= maxStalledResumes || r.resumes >= maxResumes {
			if last == nil {
				return fmt.Errorf("%w (read cut at byte %d of %d; gave up after %d resumes)", cut, r.n, r.size, r.resumes)
			}
			return fmt.Errorf("%w (read cut at byte %d of %d; gave up after %d resumes: %w)", cut, r.n, r.size, r.resumes, last)
		}
		if r.stalled > 0 {
			t := time.NewTimer(min(resumeBackoff<<(r.stalled-1), maxResumeBackoff))
			select {
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (read cut at byte %d of %d): %w", cut, r.n, r.size, r.ctx.Err())
			}
		}
		r.stalled++
		r.resumes++
		rc, from, err := r.ranger.GetBlobFrom(r.ctx, r.digest, r.n, r.size)
		if err == nil && (from < 0 || from > r.n) {
			rc.Close()
			err = fmt.Errorf("resumed read of %s starts at byte %d, past %d", r.digest, from, r.n)
		}
		if err == nil && from < r.n {
			if _, cerr := io.CopyN(io.Discard, rc, r.n-from); cerr != nil {
				rc.Close()
				err = fmt.Errorf("the whole blob sent again, cut before byte %d: %w", r.n, cerr)
			}
		}
		if err != nil {
			if client.IsPermanent(err) || r.ctx.Err() != nil {
				return fmt.Errorf("%w (read cut at byte %d of %d); resuming: %w", cut, r.n, r.size, err)
			}
			last = err
			continue
		}
		r.mu.Lock()
		closed := r.closed
		if !closed {
			r.rc = rc
		}
		r.mu.Unlock()
		if closed {
			rc.Close()
			return fmt.Errorf("%w: %w", cut, errReadClosed)
		}
		if r.onResume != nil {
			r.onResume(r.n, r.n-from)
		}
		return nil
	}
}

// Close closes the read in progress, if any, and ends resuming. It may be
// called while another goroutine reads.
func (r *resumingReader) Close() error {
	r.mu.Lock()
	rc := r.rc
	r.rc, r.closed = nil, true
	r.mu.Unlock()
	if rc == nil {
		return nil
	}
	return rc.Close()
}

var errReadClosed = errors.New("blob read closed")
