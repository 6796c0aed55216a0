package client

import (
	"context"
	"net"
	"sync"
	"time"
)

// warmDialer opens connections ahead: at the first dial to an address it
// also opens want()-1 more in the background, and later dials take those
// first. Across a far link a new connection costs a round trip (its TCP
// handshake) before its first request; a run that is about to send dozens
// of requests at once to a host (a no-op's HEADs) pays it once, beside the
// ping, instead of again for each connection of its first wave. A pooled
// connection not taken within warmFresh is closed.
type warmDialer struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	want func() int

	mu   sync.Mutex
	seen map[string]bool
	pool map[string][]warmConn
}

type warmConn struct {
	net.Conn
	at time.Time
}

// warmFresh is how long an opened-ahead connection waits to be taken.
const warmFresh = 5 * time.Second

func newWarmDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error), want func() int) *warmDialer {
	return &warmDialer{dial: dial, want: want, seen: map[string]bool{}, pool: map[string][]warmConn{}}
}

func (d *warmDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	key := network + " " + addr
	d.mu.Lock()
	for n := len(d.pool[key]); n > 0; n = len(d.pool[key]) {
		c := d.pool[key][n-1]
		d.pool[key] = d.pool[key][:n-1]
		if time.Since(c.at) < warmFresh {
			d.mu.Unlock()
			return c.Conn, nil
		}
		c.Close()
	}
	first := !d.seen[key]
	d.seen[key] = true
	d.mu.Unlock()
	if first {
		if n := d.want(); n > 1 {
			go d.warm(network, addr, key, n-1)
		}
	}
	return d.dial(ctx, network, addr)
}

// warm opens n connections to addr into the pool, and closes the ones not
// taken once they are stale.
func (d *warmDialer) warm(network, addr, key string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), warmFresh)
	defer cancel()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c, err := d.dial(ctx, network, addr)
			if err != nil {
				return
			}
			d.mu.Lock()
			d.pool[key] = append(d.pool[key], warmConn{c, time.Now()})
			d.mu.Unlock()
		})
	}
	wg.Wait()
	time.AfterFunc(warmFresh, func() { d.drop(key) })
}

// drop closes the stale pooled connections of key.
func (d *warmDialer) drop(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := d.pool[key][:0]
	for _, c := range d.pool[key] {
		if time.Since(c.at) < warmFresh {
			keep = append(keep, c)
		} else {
			c.Close()
		}
	}
	d.pool[key] = keep
}

// ExpectParallel tells the client how many requests a run may send to one
// host at once (its images, say): the first connection to each host opens
// that many (at most --max-conns) ahead. 0 or 1: none.
func (c *Client) ExpectParallel(n int) {
	c.warm.Store(int64(n))
}

func (c *Client) warmConns() int {
	n := int(c.warm.Load())
	m := c.hostPolicy.MaxConns
	if m <= 0 {
		m = defaultMaxConns
	}
	return min(n, m)
}
