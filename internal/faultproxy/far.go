package faultproxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sleep waits d (nothing when d ≤ 0); false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// farListener holds every accepted connection one round trip before its
// first byte is read: the TCP handshake of a far client.
type farListener struct {
	net.Listener
	rtt func() time.Duration
}

func (l *farListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	d := l.rtt()
	if d <= 0 {
		return c, nil
	}
	return &farConn{Conn: c, until: time.Now().Add(d)}, nil
}

type farConn struct {
	net.Conn
	once  sync.Once
	until time.Time
}

func (c *farConn) Read(b []byte) (int, error) {
	c.once.Do(func() { time.Sleep(time.Until(c.until)) })
	return c.Conn.Read(b)
}

// shapeChunk is the most bytes a shaped read or write passes at once: small
// enough that one body cannot hold the bucket for long.
const shapeChunk = 32 << 10

func newShaper(p Plan) *rate.Limiter {
	if p.Bandwidth <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(p.Bandwidth), shapeChunk)
}

// shapedBody passes a request body at the link's rate.
type shapedBody struct {
	io.ReadCloser
	l   *rate.Limiter
	ctx context.Context
}

func (b *shapedBody) Read(p []byte) (int, error) {
	if len(p) > shapeChunk {
		p = p[:shapeChunk]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if werr := b.l.WaitN(b.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// shapedWriter passes a response body at the link's rate.
type shapedWriter struct {
	http.ResponseWriter
	l   *rate.Limiter
	ctx context.Context
}

func (w *shapedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *shapedWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		part := b[:min(len(b), shapeChunk)]
		if err := w.l.WaitN(w.ctx, len(part)); err != nil {
			return written, err
		}
		n, err := w.ResponseWriter.Write(part)
		written += n
		if err != nil {
			return written, err
		}
		b = b[len(part):]
	}
	return written, nil
}
