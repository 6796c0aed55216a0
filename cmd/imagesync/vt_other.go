//go:build !windows

package main

import "os"

// enableVT: terminals outside Windows take VT sequences as they are.
func enableVT(*os.File) bool { return true }
