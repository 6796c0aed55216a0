package main

import (
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/report"
)

// pullCounts are the manifest GETs sent to each host so far.
func pullCounts(c *client.Client) map[string]int64 {
	out := map[string]int64{}
	for _, h := range c.Hosts() {
		out[h.Host] = h.Pulls
	}
	return out
}

// pullQuotas describes every host that reported a pull quota (Docker Hub's
// ratelimit headers), with the pulls sent since before.
func pullQuotas(c *client.Client, before map[string]int64) []report.PullQuota {
	var out []report.PullQuota
	for _, h := range c.Hosts() {
		if h.Remaining < 0 {
			continue
		}
		out = append(out, report.NewPullQuota(h.Host, h.Remaining, h.Limit, h.Window, h.ResetBy, h.Reserve, h.Pulls-before[h.Host]))
	}
	return out
}
