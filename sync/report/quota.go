package report

import (
	"fmt"
	"io"
	"time"
)

// PullQuota is a registry's pull quota (Docker Hub's ratelimit headers) as
// a run or plan saw it.
type PullQuota struct {
	Registry  string `json:"registry"`
	Remaining int    `json:"remaining"`         // pulls left in the window, as last reported
	Limit     int    `json:"limit,omitempty"`   // pulls per window (0: not reported)
	Window    string `json:"window,omitempty"`  // e.g. 6h0m0s
	ResetBy   string `json:"resetBy,omitempty"` // RFC 3339: the window resets by then at the latest
	Reserve   int    `json:"reserve"`           // --hub-reserve
	// Pulls are the manifest GETs this run sent (sync); for a plan, the
	// pulls a sync of it needs (the manifest reads of what it would copy).
	Pulls int64 `json:"pulls"`
}

// NewPullQuota describes one registry's quota.
func NewPullQuota(registry string, remaining, limit int, window time.Duration, resetBy time.Time, reserve int, pulls int64) PullQuota {
	q := PullQuota{Registry: registry, Remaining: remaining, Limit: max(limit, 0), Reserve: reserve, Pulls: pulls}
	if window > 0 {
		q.Window = window.String()
	}
	if !resetBy.IsZero() {
		q.ResetBy = resetBy.UTC().Format(time.RFC3339)
	}
	return q
}

func (q PullQuota) left() string {
	s := fmt.Sprintf("%d", q.Remaining)
	switch {
	case q.Limit > 0:
		s += fmt.Sprintf(" of %d pulls left", q.Limit)
	case q.Remaining == 1:
		s += " pull left"
	default:
		s += " pulls left"
	}
	if q.Window != "" {
		s += " in its " + q.Window + " window"
	}
	if q.ResetBy != "" {
		if t, err := time.Parse(time.RFC3339, q.ResetBy); err == nil {
			s += ", reset by " + t.Format("2006-01-02 15:04 UTC")
		}
	}
	return s
}

// WriteRunQuota prints a line per registry that reported a pull quota
// during a run: what is left and what the run pulled.
func WriteRunQuota(w io.Writer, qs []PullQuota) {
	for _, q := range qs {
		fmt.Fprintf(w, "pull quota of %s: %s (%d kept in reserve, --hub-reserve); this run pulled %d\n", q.Registry, q.left(), q.Reserve, q.Pulls)
	}
}

// writePlanQuota prints a line per registry with a pull quota: what is left
// and what a sync of the plan needs.
func writePlanQuota(w io.Writer, qs []PullQuota) {
	for _, q := range qs {
		short := ""
		if avail := q.Remaining - q.Reserve; int64(avail) < q.Pulls {
			short = fmt.Sprintf(": %d short, a sync copies what fits and stops", q.Pulls-int64(max(avail, 0)))
		}
		fmt.Fprintf(w, "pull quota of %s: %s (%d kept in reserve, --hub-reserve); a sync of this plan needs %d pulls%s\n", q.Registry, q.left(), q.Reserve, q.Pulls, short)
	}
}
