package engine

import (
	"context"
	"encoding"
	"errors"
	"fmt"
	"io"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/ledger"
)

// largeBlob is the size from which a blob going to one registry is uploaded
// resumably (uploadResumable): in PATCH chunks whose progress the ledger
// keeps, so that a broken connection or a killed run costs only what the
// registry did not keep. Below it a blob goes in one PUT: each chunk costs a
// request and a round trip (W2's 32 MiB layers went from two requests each
// to four across a 50 ms link, 2.8 s to 4.2 s), and a smaller blob sent
// again costs less than that.
var largeBlob int64 = 64 << 20

// resumableUploader: a store whose upload sessions can be asked where they
// stand and continued from an offset (a registry).
type resumableUploader interface {
	UploadStatus(ctx context.Context, location string, most int64) (string, int64, error)
	PutUploadAt(ctx context.Context, location, digest string, off, size int64, body io.Reader, progress func(location string, off int64)) (string, int64, error)
	KeepableSession(location string) (string, bool)
}

var _ resumableUploader = (*client.Repo)(nil)

// resumable returns the resumable uploader for a blob going to the slots,
// when its upload is one: a large blob, one destination, a registry that
// did not refuse a chunked upload in this run.
func (x *transfer) resumable(b oci.Blob, slots []*uploadSlot) (resumableUploader, bool) {
	if len(slots) != 1 || b.Size < largeBlob {
		return nil, false
	}
	if _, refused := x.noChunks.Load(slots[0].dst.Host()); refused {
		return nil, false
	}
	r, ok := slots[0].dst.(resumableUploader)
	return r, ok
}

// hashMark is the verifier's hash state after the first off bytes of the
// blob, taken when the registry acknowledged a chunk ending there: a resume
// from off or later reads the source from off (blobRanger) instead of from
// the start.
type hashMark struct {
	off   int64
	state []byte
}

// uploadResumable uploads a large blob into one registry in chunks,
// resuming rather than restarting: a session that broke is asked where it
// stands (GET) and continued from the offset the registry reports; a
// session a killed or interrupted run left (kept in the ledger after each
// chunk, when its location is keepable) is continued by the next run. A
// session the registry no longer has, or refuses to resume (distribution
// 2.8, once a cut request wrote part of its bytes), is replaced by a fresh
// one (three failures without progress at most). The bytes before the
// offset are not sent again; the source is read from the last acknowledged
// chunk's end where it can be read from an offset (the hash state there is
// kept, in memory and in the ledger), else from the start, and the bytes up
// to the offset are hashed: the digest is checked as for any upload. An
// interrupted run leaves its session open for the next one. A registry
// that refuses the first PATCH as such (client.RefusesChunks) gets this
// blob, and the run's later ones, in one PUT: uploadResumable then returns
// false, having cancelled its session (pre is used up), and upload goes
// on as for a small blob.
func (x *transfer) uploadResumable(ctx context.Context, src Store, b oci.Blob, s *uploadSlot, ru resumableUploader, pre *prefetch) (handled bool) {
	know := x.blobs.know(s.dst)
	var off int64
	var mark hashMark
	// A session an earlier run left wins over one the blob's check just
	// opened (a missing repository's blobs are checked with a POST that
	// opens one): that one is cancelled.
	if u, ok := know.uploadSession(s.dst, b.Digest); ok {
		// The ledger is a file on disk: its location must still be one
		// this registry's requests may go to (its own host, no query).
		loc, n, err := "", int64(0), errors.New("the ledger's session location is not the registry's")
		if kept, ok := ru.KeepableSession(u.Loc); ok && kept == u.Loc {
			loc, n, err = ru.UploadStatus(ctx, u.Loc, b.Size)
		}
		if err == nil {
			if s.location != "" && s.location != loc {
				s.dst.CancelUpload(ctx, s.location)
			}
			s.location, off = loc, n
			if u.Off <= n {
				mark = hashMark{u.Off, u.Hash}
			}
			x.log.Debug("resuming an upload an earlier run left", "digest", b.Digest, "into", s.dst.String(), "offset", n)
			x.work.bytes(s.image, n)
			s.sent.Add(n)
		} else {
			x.log.Debug("the upload session an earlier run left is gone: uploading afresh", "digest", b.Digest, "into", s.dst.String(), "error", err)
			know.dropSession(s.dst, b.Digest)
			if ctx.Err() != nil {
				pre.discard()
				s.err = ctx.Err()
				return true
			}
		}
	}
	abandon := func() {
		s.dst.CancelUpload(ctx, s.location)
		s.location = ""
		mark = hashMark{}
		know.dropSession(s.dst, b.Digest)
	}
	if x.opt.OnPlanned != nil {
		x.opt.OnPlanned(b.Size - off)
	}
	reported := off // bytes counted as progress (work, OnBytes)
	failures := 0
	for {
		if s.location == "" {
			loc, _, err := s.dst.StartUpload(ctx, b.Digest, "")
			if err != nil {
				pre.discard()
				s.err = err
				return true
			}
			s.location, off = loc, 0
			if kept, ok := ru.KeepableSession(loc); ok {
				know.keepSession(s.dst, b.Digest, ledger.Upload{Loc: kept})
			}
		}
		if off > 0 { // the prefetched read starts at 0: not needed
			pre.discard()
			pre = nil
		}
		a := x.sendFrom(ctx, src, b, s, ru, off, &mark, &reported, pre)
		pre = nil
		s.n += a.sent
		if a.err == nil {
			s.err = nil
			know.dropSession(s.dst, b.Digest)
			return true
		}
		err := a.err
		s.location = a.loc
		if ctx.Err() != nil {
			s.err = err // the session stays open (and in the ledger) for the next run
			return true
		}
		if off == 0 && client.RefusesChunks(err) {
			if _, seen := x.noChunks.LoadOrStore(s.dst.Host(), true); !seen {
				x.log.Warn("the registry refused a chunked upload: large blobs go in one PUT from now on (not resumable)", "registry", s.dst.Host(), "answer", err.Error())
			}
			abandon()
			x.work.bytes(s.image, -s.sent.Swap(0))
			s.n, s.err = 0, nil
			return false
		}
		if a.restored && errors.Is(err, errDigestMismatch) {
			// The hash state resumed from does not lead to the digest (a
			// ledger that lies): start over, reading everything.
			x.log.Debug("a resumed upload's hash state was wrong: uploading afresh", "digest", b.Digest, "into", s.dst.String())
			abandon()
			off = 0
			if failures++; failures >= 3 {
				s.err = err
				return true
			}
			continue
		}
		if (client.IsPermanent(err) || oci.IsPermanent(err)) && !client.IsSessionTrouble(err) {
			abandon()
			s.err = err
			return true
		}
		next, n, serr := ru.UploadStatus(ctx, a.loc, a.reached)
		switch {
		case serr == nil && n <= off && client.IsSessionTrouble(err):
			// It refused the bytes at the offset it still reports (a
			// session of one byte reads "0-0", as an empty one does).
			serr = fmt.Errorf("the session stands at %d, where it refused the upload", n)
			fallthrough
		case serr != nil:
			x.log.Debug("an upload session broke and cannot be resumed: uploading afresh", "digest", b.Digest, "into", s.dst.String(), "error", err, "status", serr)
			abandon()
			off = 0
			failures++
		default:
			x.log.Debug("an upload broke: resuming in the same session", "digest", b.Digest, "into", s.dst.String(), "error", err, "offset", n)
			if n <= off {
				failures++ // no progress since the last try
			}
			if mark.off > n {
				mark = hashMark{}
			}
			s.location, off = next, n
		}
		if failures >= 3 {
			abandon()
			s.err = err
			return true
		}
	}
}

// sendAttempt is how one attempt of sendFrom ended: the last location the
// registry acknowledged, how far the bytes sent may have got (reached), the
// bytes sent, whether the hash state was restored from a mark, and the
// error.
type sendAttempt struct {
	loc      string
	reached  int64
	sent     int64
	restored bool
	err      error
}

// sendFrom reads the blob from the source (from the mark when it can, else
// from the start, or from the prefetched read), hashes the bytes before off
// without sending them, and sends the rest to the session from off on,
// marking the hash state at each chunk the registry acknowledges (in the
// ledger too, with the session, when its location is keepable). A read cut
// midway resumes from the byte it reached (resumingReader).
func (x *transfer) sendFrom(ctx context.Context, src Store, b oci.Blob, s *uploadSlot, ru resumableUploader, off int64, mark *hashMark, reported *int64, pre *prefetch) (a sendAttempt) {
	a.loc, a.reached = s.location, off
	var rc io.ReadCloser
	var start int64
	var state []byte
	if r, ok := src.(blobRanger); ok && off > 0 && mark.off > 0 && mark.off <= off && len(mark.state) > 0 {
		if got, from, err := r.GetBlobFrom(ctx, b.Digest, mark.off, b.Size); err == nil {
			rc, start = got, from
			if from == mark.off {
				state = mark.state
			}
		}
	}
	if rc == nil {
		var size int64
		var err error
		if pre != nil {
			rc, size, err = pre.wait()
		} else {
			rc, size, err = src.GetBlob(ctx, b.Digest)
		}
		if err != nil {
			a.err = fmt.Errorf("reading from %s: %w", src, err)
			return a
		}
		if size >= 0 && size != b.Size {
			rc.Close()
			a.err = oci.Permanent(fmt.Errorf("source sent %d bytes, the manifest says %d", size, b.Size))
			return a
		}
	}
	rc = newResumingReader(ctx, src, b.Digest, b.Size, rc, func(offset, reread int64) {
		x.readsResumed.Add(1)
		x.bytesReread.Add(reread)
		x.log.Debug("resuming a cut blob read", "digest", b.Digest, "from", src.String(), "offset", offset, "reread", reread)
	})
	if rr, ok := rc.(*resumingReader); ok {
		rr.n = start // resumes go on from where this read started
	}
	defer func() { rc.Close() }()
	vr, err := newVerifier(rc, b.Digest, b.Size)
	if err != nil {
		a.err = err
		return a
	}
	if state != nil {
		if u, ok := vr.h.(encoding.BinaryUnmarshaler); ok && u.UnmarshalBinary(state) == nil {
			vr.n, a.restored = start, true
		}
	}
	if !a.restored && start > 0 { // the state did not take: read from the start
		rc.Close()
		*mark = hashMark{}
		return x.sendFrom(ctx, src, b, s, ru, off, mark, reported, nil)
	}
	if off > vr.n {
		if _, err := io.CopyN(io.Discard, vr, off-vr.n); err != nil {
			a.err = cmpErr(vr.err, fmt.Errorf("reading from %s: %w", src, err))
			return a
		}
		markAt(vr, off, mark) // the registry holds these: a later resume reads from here
	}
	vr.progress = func(n int64) {
		x.sem.moved(n) // what the gate learns its limit from, as the bytes move
		a.sent += n
		if over := vr.n - *reported; over > 0 {
			*reported = vr.n
			if x.opt.OnBytes != nil {
				x.opt.OnBytes(over)
			}
			s.sent.Add(over)
			x.work.bytes(s.image, over)
		}
	}
	acked := func(loc string, n int64) {
		markAt(vr, n, mark)
		if kept, ok := ru.KeepableSession(loc); ok {
			u := ledger.Upload{Loc: kept, Off: n}
			if mark.off == n {
				u.Hash = mark.state
			}
			x.blobs.know(s.dst).keepSession(s.dst, b.Digest, u)
		}
	}
	loc, done, err := ru.PutUploadAt(ctx, s.location, b.Digest, off, b.Size, vr, acked)
	if err != nil && vr.err != nil {
		err = vr.err
	}
	a.loc, a.reached, a.err = loc, max(done, off+a.sent), err
	return a
}

// markAt marks the verifier's hash state when it has read exactly off
// bytes (nothing of the next chunk yet).
func markAt(vr *verifier, off int64, mark *hashMark) {
	if vr.n != off {
		return
	}
	if m, ok := vr.h.(encoding.BinaryMarshaler); ok {
		if st, err := m.MarshalBinary(); err == nil {
			*mark = hashMark{off, st}
		}
	}
}
