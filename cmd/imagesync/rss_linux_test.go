package main

import (
	"os"
	"syscall"
)

func init() {
	maxRSSOf = func(ps *os.ProcessState) int64 {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			return ru.Maxrss // KiB on Linux
		}
		return 0
	}
}
