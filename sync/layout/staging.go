package layout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// An archive is written in a staging directory beside it, FILE.partial,
// that a killed run resumes from. Only a staging directory this program
// made is resumed or emptied: it holds a marker file naming the archive and
// belongs to this user. Anything else at that path (a file, a link, a
// directory someone made) is refused, and nothing in it is touched.

// stagingMarker is the marker file in a staging directory.
const stagingMarker = ".imagesync-staging"

func markerText(archive string) string {
	return "imagesync staging directory of the archive " + archive + "\n"
}

func (l *Layout) refuseStaging(why string) error {
	return &ConfigError{Path: l.dir, Err: fmt.Errorf("%s: not a staging directory imagesync made for %s; move it away (nothing in it was used or deleted)", why, l.path)}
}

// openStaging opens an existing staging directory after checking that it
// is ours; nil when there is none.
func (l *Layout) openStaging() (*os.Root, error) {
	fi, err := os.Lstat(l.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &ConfigError{Path: l.dir, Err: err}
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, l.refuseStaging("a symbolic link")
	case !fi.IsDir():
		return nil, l.refuseStaging("not a directory")
	case !ownedByUs(fi):
		return nil, l.refuseStaging("owned by another user")
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil, &ConfigError{Path: l.dir, Err: err}
	}
	if st, err := root.Stat("."); err != nil || !os.SameFile(fi, st) {
		root.Close()
		return nil, l.refuseStaging("replaced while opened")
	}
	b, err := readSmall(root, stagingMarker, 4096)
	if err != nil || string(b) != markerText(l.abs) {
		root.Close()
		return nil, l.refuseStaging("no " + stagingMarker + " marker")
	}
	return root, nil
}

// clearStaging empties our staging directory, keeping its marker.
func clearStaging(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == stagingMarker {
			continue
		}
		if err := root.RemoveAll(e.Name()); err != nil {
			return err
		}
	}
	return nil
}
