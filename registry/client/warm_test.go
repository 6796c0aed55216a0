package client

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// The first dial to an address opens want()-1 more ahead; the next dials
// take those instead of dialing; a dialer that wants none opens none.
func TestWarmDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			defer c.Close()
		}
	}()
	var dials atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	ctx := context.Background()
	addr := ln.Addr().String()

	off := newWarmDialer(dial, func() int { return 0 })
	c, err := off.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(50 * time.Millisecond) // any background dial would have started
	if n := dials.Load(); n != 1 {
		t.Fatalf("wanting none, %d dials for one connection", n)
	}

	dials.Store(0)
	d := newWarmDialer(dial, func() int { return 4 })
	first, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		pooled := len(d.pool["tcp "+addr])
		d.mu.Unlock()
		if pooled == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections opened ahead, want 3", pooled)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := dials.Load(); n != 4 {
		t.Fatalf("%d dials, want the first and 3 ahead", n)
	}
	for range 3 {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if n := dials.Load(); n != 4 {
		t.Fatalf("taking the pooled connections dialed again: %d dials", n)
	}
	c, err = d.DialContext(ctx, "tcp", addr) // the pool is empty: a dial, and no new warm-up
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(50 * time.Millisecond)
	if n := dials.Load(); n != 5 {
		t.Fatalf("%d dials, want 5: a warm-up happens once per address", n)
	}
}
