//go:build unix

package layout

import (
	"io/fs"
	"os"
	"syscall"
)

// openReadFlags: never through a final symbolic link, never blocking on a FIFO.
const openReadFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// noFollow keeps an open from following a final symbolic link.
const noFollow = syscall.O_NOFOLLOW

// nonBlock keeps an open from blocking on a FIFO.
const nonBlock = syscall.O_NONBLOCK

// ownedByUs reports whether this user owns fi (a file another user made
// in a shared directory is never taken for ours).
func ownedByUs(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || int(st.Uid) == os.Geteuid()
}
