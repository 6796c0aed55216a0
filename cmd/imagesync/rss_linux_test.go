package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

func init() {
	maxRSSOf = func(ps *os.ProcessState) int64 {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			return ru.Maxrss // KiB on Linux
		}
		return 0
	}
	watchRSSOf = watchHWM
}

// watchHWM follows the peak RSS of the running process pid (VmHWM in
// /proc/PID/status, in KiB) until stop is called. Unlike getrusage's
// ru_maxrss of a child, it is not raised by the RSS of the test process
// that forked it (until exec the child shares its pages: a test binary
// that held a 256 MiB blob made a 40 MiB plan look like 630 MiB).
func watchHWM(pid int) (stop func() int64) {
	var peak int64
	done := make(chan struct{})
	finished := make(chan struct{})
	status := fmt.Sprintf("/proc/%d/status", pid)
	read := func() {
		b, err := os.ReadFile(status)
		if err != nil {
			return
		}
		if _, rest, ok := bytes.Cut(b, []byte("VmHWM:")); ok {
			line, _, _ := bytes.Cut(rest, []byte("\n"))
			f := bytes.Fields(line)
			if len(f) > 0 {
				if kb, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil && kb > peak {
					peak = kb
				}
			}
		}
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return peak
	}
}
