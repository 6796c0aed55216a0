package engine

import (
	"math/rand/v2"
	"time"
)

// Job retry backoff: a job that failed transiently waits before it goes
// back on the queue, exponentially longer each attempt with "equal jitter":
// attempt n waits between d/2 and d, d = min(JobBackoffMax, JobBackoffBase·2^(n-1)).
var (
	JobBackoffBase = time.Second
	JobBackoffMax  = 30 * time.Second
)

// JobBackoff returns the wait before attempt n+1 of a job (n ≥ 1).
func JobBackoff(n int) time.Duration {
	d := JobBackoffBase << max(0, n-1)
	if d <= 0 || d > JobBackoffMax {
		d = JobBackoffMax
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
