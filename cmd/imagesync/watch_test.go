package main

import (
	"strings"
	"testing"
	"time"
)

func TestNextWait(t *testing.T) {
	for _, tc := range []struct {
		every, took time.Duration
		rnd         float64
		want        time.Duration
	}{
		{time.Hour, 0, 0.5, time.Hour},                                 // no jitter at the middle
		{time.Hour, 0, 0, 54 * time.Minute},                            // -10%
		{time.Hour, 0, 1, 66 * time.Minute},                            // +10%
		{time.Hour, 10 * time.Minute, 0.5, 50 * time.Minute},           // from the start of the last run
		{time.Hour, 2 * time.Hour, 0.5, 0},                             // a run longer than every: the next at once
		{10 * time.Second, time.Second, 0.25, 8500 * time.Millisecond}, // 10s - 0.5s - 1s
	} {
		if got := nextWait(tc.every, tc.took, func() float64 { return tc.rnd }); got.Round(time.Millisecond) != tc.want {
			t.Errorf("nextWait(%s, %s, %v) = %s, want %s", tc.every, tc.took, tc.rnd, got, tc.want)
		}
	}
}

func TestEveryUsage(t *testing.T) {
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", "a.io/x:1: b.io/x\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--images", images, "--every", "0s"}, "--every 0s: must be at least 1s"},
		{[]string{"--images", images, "--every", "500ms"}, "--every 500ms: must be at least 1s"},
		{[]string{"--images", images, "--every", "1h", "--kube-report", "job"}, "--every and --kube-report cannot go together"},
		{[]string{"--images", images, "--every", "soon"}, "--every"},
	} {
		r := runCLI(t, nil, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, exitUsage, tc.want)
		}
	}
}
