package main

import "testing"

func TestCPUShare(t *testing.T) {
	for _, tc := range []struct {
		env           string
		current, want int
	}{
		{"", 1, 1},
		{"", 2, 1},
		{"", 3, 1},
		{"", 8, 4},
		{"", 64, 32},
		{"8", 8, 8}, // GOMAXPROCS given: as the runtime read it
		{"1", 1, 1},
	} {
		if got := cpuShare(tc.env, tc.current); got != tc.want {
			t.Errorf("cpuShare(%q, %d) = %d, want %d", tc.env, tc.current, got, tc.want)
		}
	}
}
