package engine

import (
	"testing"
	"time"
)

func TestJobBackoffIsExponentialWithJitter(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := JobBackoff(n)
			if d < want/2 || d > want {
				t.Fatalf("JobBackoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("JobBackoff(%d): %d distinct waits in 200 draws: no jitter", n, len(seen))
		}
	}
}
