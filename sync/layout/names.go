package layout

import (
	"fmt"
	"strings"

	"github.com/imagesync/imagesync/oci"
)

// Names in index.json are written by other tools, in any form a reference
// takes: a short name ("nginx:1") names the same image as its normalised
// form ("docker.io/library/nginx:1"), and is found by it. Two entries whose
// names mean one image but hold different digests are ambiguous: neither
// is taken (which one a tool picks is up to the tool).

// SetNormalize sets how names are normalised (rules.CanonicalLayoutName;
// it returns "" for a name it cannot read), for the layouts opened after.
func (s *Set) SetNormalize(f func(string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.normalize = f
}

// canonical maps each normalised name to its entries, in index order
// (l.mu held).
func (l *Layout) canonical() map[string][]*entry {
	if l.canon != nil && l.canonOf == len(l.index.entries) && !l.canonDirty {
		return l.canon
	}
	l.canon, l.canonOf, l.canonDirty = map[string][]*entry{}, len(l.index.entries), false
	for _, e := range l.index.entries {
		if e.name == "" {
			continue
		}
		n := e.name
		if l.normalize != nil {
			if c := l.normalize(e.name); c != "" {
				n = c
			}
		}
		l.canon[n] = append(l.canon[n], e)
	}
	return l.canon
}

// find returns the entry named name (exactly, or by its normalised form),
// or an error when entries of different digests share the name.
func (l *Layout) find(name string) (*entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := name
	if l.normalize != nil {
		if c := l.normalize(name); c != "" {
			key = c
		}
	}
	cands := l.canonical()[key]
	if len(cands) > 1 {
		var pos []string
		differ := false
		for _, c := range cands {
			differ = differ || c.desc.Digest != cands[0].desc.Digest
			for i, e := range l.index.entries {
				if e == c {
					pos = append(pos, fmt.Sprintf("%d (%q, %s)", i+1, e.name, e.desc.Digest))
				}
			}
		}
		if differ {
			return nil, oci.Permanent(fmt.Errorf("%s: %s is ambiguous: index.json entries %s name it with different digests", l.path, name, strings.Join(pos, ", ")))
		}
	}
	if e := l.index.get(name); e != nil {
		return e, nil
	}
	if len(cands) > 0 {
		return cands[len(cands)-1], nil
	}
	return nil, nil
}

// Ambiguous lists the names that entries of different digests share (after
// normalisation), each with the entries' names as written.
func (l *Layout) Ambiguous() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for n, cands := range l.canonical() {
		for _, c := range cands[1:] {
			if c.desc.Digest != cands[0].desc.Digest {
				for _, c := range cands {
					out[n] = append(out[n], c.name)
				}
				break
			}
		}
	}
	return out
}
