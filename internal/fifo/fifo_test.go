package fifo

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Slots go to the waiters in their order; one that gave up leaves the
// queue; one granted as it gave up hands the slot back.
func TestWaiters(t *testing.T) {
	var mu sync.Mutex
	var w Waiters
	order := make(chan int, 3)
	queued := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			got := w.Len()
			mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waiting, want %d", got, n)
			}
		}
	}
	wait := func(ctx context.Context, id int) chan error {
		done := make(chan error, 1)
		go func() {
			mu.Lock()
			err := w.Wait(ctx, &mu, func() { t.Errorf("waiter %d gave back a slot it was not granted", id) })
			if err == nil {
				order <- id
			}
			done <- err
		}()
		return done
	}
	w1 := wait(context.Background(), 1)
	queued(1)
	ctx2, cancel2 := context.WithCancel(context.Background())
	w2 := wait(ctx2, 2)
	queued(2)
	w3 := wait(context.Background(), 3)
	queued(3)
	cancel2()
	if err := <-w2; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	queued(2)
	for _, want := range []int{1, 3} {
		mu.Lock()
		if !w.Grant() {
			t.Fatal("Grant found nobody waiting")
		}
		mu.Unlock()
		if id := <-order; id != want {
			t.Fatalf("slot went to %d, want %d", id, want)
		}
	}
	<-w1
	<-w3
	mu.Lock()
	if w.Grant() || w.Len() != 0 {
		t.Fatal("Grant with nobody waiting")
	}
	mu.Unlock()

	// Granted and cancelled at once: the slot comes back.
	ctx, cancel := context.WithCancel(context.Background())
	gaveBack := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		mu.Lock()
		done <- w.Wait(ctx, &mu, func() { gaveBack <- struct{}{} })
	}()
	queued(1)
	mu.Lock()
	cancel()
	w.Grant()
	time.Sleep(10 * time.Millisecond) // the waiter sees both, and blocks on mu
	mu.Unlock()
	if err := <-done; err == nil {
		// it took the slot: also right
		return
	}
	select {
	case <-gaveBack:
	default:
		t.Fatal("a waiter granted as it gave up kept the slot")
	}
}
