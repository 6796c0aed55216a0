package engine

import (
	"context"
	"io"
	"sync"
)

// fanOut feeds one verified source stream to several PUTs in lockstep; a
// destination that fails drops out without stopping the others.
func fanOut(ctx context.Context, vr *verifier, digest string, size int64, slots []*uploadSlot) {
	writers := make([]*io.PipeWriter, len(slots))
	var wg sync.WaitGroup
	for i, s := range slots {
		pr, pw := io.Pipe()
		writers[i] = pw
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.err = s.dst.PutUpload(ctx, s.location, digest, size, pr)
			pr.CloseWithError(cmpErr(s.err, io.ErrClosedPipe)) // unblocks a writer the PUT no longer reads
		}()
	}
	buf := make([]byte, 256<<10)
	alive := len(writers)
	var readErr error
	for alive > 0 {
		n, err := vr.Read(buf)
		if n > 0 {
			for i, w := range writers {
				if w == nil {
					continue
				}
				if _, werr := w.Write(buf[:n]); werr != nil {
					writers[i], alive = nil, alive-1
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	for _, w := range writers {
		if w == nil {
			continue
		}
		if readErr != nil {
			w.CloseWithError(readErr) // the PUT fails: the registry never commits a short or corrupt blob
		} else {
			w.Close()
		}
	}
	wg.Wait()
	for _, s := range slots {
		switch {
		case s.err == nil:
			s.n = vr.n
		case readErr != nil:
			s.err = readErr
		}
	}
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}
