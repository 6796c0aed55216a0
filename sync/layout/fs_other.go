//go:build !unix

package layout

import "io/fs"

// openReadFlags: on Windows, os.Root refuses to follow links itself.
const openReadFlags = 0

const noFollow = 0

const nonBlock = 0

func ownedByUs(fs.FileInfo) bool { return true }
