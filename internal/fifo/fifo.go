// Package fifo holds Waiters: the queue of a counting semaphore whose
// owner keeps the count and decides when a slot is free (the engine's
// transfer gate, a registry host's request slots). A freed slot goes to the
// first waiter, and only to it: waking every waiter on each release made
// thousands of goroutines run for nothing.
package fifo

import (
	"context"
	"sync"
)

// Waiters is a first-come-first-served queue of goroutines waiting for a
// slot. Every method is called with the owner's mutex held.
type Waiters struct {
	q []chan struct{}
}

// Len is how many wait.
func (w *Waiters) Len() int { return len(w.q) }

// Wait queues the caller, unlocks mu and waits until Grant hands it a slot
// (nil) or ctx ends (its error). A waiter handed a slot just as ctx ended
// gives it back with giveBack, called with mu held again.
func (w *Waiters) Wait(ctx context.Context, mu *sync.Mutex, giveBack func()) error {
	ch := make(chan struct{}, 1)
	w.q = append(w.q, ch)
	mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		for i, c := range w.q {
			if c == ch {
				w.q = append(w.q[:i], w.q[i+1:]...)
				return ctx.Err()
			}
		}
		giveBack() // granted meanwhile: not in the queue any more
		return ctx.Err()
	}
}

// Grant hands a slot to the first waiter; false when nobody waits. The
// owner counts the slot as taken.
func (w *Waiters) Grant() bool {
	if len(w.q) == 0 {
		return false
	}
	w.q[0] <- struct{}{}
	w.q[0] = nil
	w.q = w.q[1:]
	return true
}
