package client

import (
	"context"
	"sort"
	"time"
)

// Observer hears about every request the client sends and every retry of
// one, from the requests' goroutines (metrics). It must not block.
type Observer interface {
	// Request is called once per attempt: status is the HTTP status, or 0
	// when no answer came (err says why).
	Request(host, method string, status int, err error)
	// Retry is called when an attempt is about to be repeated.
	Retry(host string)
}

// WithObserver reports every request to o.
func WithObserver(o Observer) Option { return func(c *Client) { c.observer = o } }

// HostStatus is the client's view of one host: the request pace learned
// from its 429s and Docker Hub's pull quota.
type HostStatus struct {
	Host string
	// Pace is the learned request rate (requests per second); 0 while the
	// host never refused a request.
	Pace float64
	// Remaining is the last ratelimit-remaining the host sent; -1 unknown.
	Remaining int
	// Limit is the last ratelimit-limit; -1 unknown.
	Limit  int
	Window time.Duration
	// ResetBy is when the window resets at the latest (zero: unknown).
	ResetBy time.Time
	// Pulls counts the manifest GETs sent to the host (Docker Hub's pulls).
	Pulls int64
	// Reserve is the pulls kept for people (--hub-reserve).
	Reserve int
}

// Hosts returns the status of every host the client has sent requests to,
// sorted by host.
func (c *Client) Hosts() []HostStatus {
	t := c.limits
	t.mu.Lock()
	hosts := make(map[string]*hostState, len(t.hosts))
	for k, h := range t.hosts {
		hosts[k] = h
	}
	t.mu.Unlock()
	out := make([]HostStatus, 0, len(hosts))
	for name, h := range hosts {
		h.mu.Lock()
		st := HostStatus{Host: name, Remaining: h.remaining, Limit: h.quotaLimit, Window: h.window, Pulls: h.pulls, Reserve: h.policy.PullReserve}
		if h.window > 0 && !h.quotaAt.IsZero() {
			st.ResetBy = h.quotaAt.Add(h.window)
		}
		h.mu.Unlock()
		st.Pace = h.pace.current()
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

// ReservePulls sets n manifest GETs aside for one image when the
// repository's registry reported a pull quota (Docker Hub's
// ratelimit-remaining): the GETs made with the returned context spend them,
// every other GET to that registry leaves them alone. It returns a
// *PullLimitError (permanent) when they would eat into the reserve, so that
// an image the quota cannot pay for is not started (the engine asks before
// reading an index's children: a quota running out stops an image before
// it starts, not halfway through). release gives back what was not spent.
// Without a known quota it does nothing.
func (r *Repo) ReservePulls(ctx context.Context, n int) (context.Context, func(), error) {
	host := r.h.reg.RegistryStr()
	return r.c.limits.get(host).reservePulls(ctx, host, n)
}
