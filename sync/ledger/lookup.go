package ledger

import (
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// layers returns the in-memory layers, newest first. Call with l.mu held.
func (l *Ledger) layers() []*layer {
	out := make([]*layer, 0, 3)
	for _, ly := range []*layer{l.pending, l.flushing, l.base} {
		if ly != nil {
			out = append(out, ly)
		}
	}
	return out
}

// Manifest returns what the ledger knows of a destination reference.
func (l *Ledger) Manifest(dst string) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.manifest(dst)
}

func (l *Ledger) manifest(dst string) (Entry, bool) {
	repo := repoOf(dst)
	for _, ly := range l.layers() {
		if e, ok := ly.manifests[dst]; ok {
			return e, true
		}
		if ly.dropped[repo] || ly.gone[dst] {
			return Entry{}, false
		}
	}
	var e Entry
	var ok bool
	l.view(func(tx *bolt.Tx) { e, ok = getManifest(tx, dst) })
	return e, ok
}

// NeedsRepair reports whether verify found dst broken since it was last written.
func (l *Ledger) NeedsRepair(dst string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ly := range l.layers() {
		if v, ok := ly.repair[dst]; ok {
			return v
		}
	}
	var v bool
	l.view(func(tx *bolt.Tx) { v = tx.Bucket(bucketRepair).Get([]byte(dst)) != nil })
	return v
}

// HasBlob reports whether repo ("registry/repository") is known to hold the blob.
func (l *Ledger) HasBlob(repo, digest string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hasBlob(repo, digest)
}

func (l *Ledger) hasBlob(repo, digest string) bool {
	if known, settled := l.blobInMemory(repo, digest); settled {
		return known
	}
	var v bool
	l.view(func(tx *bolt.Tx) { v = hasBlobTx(tx, repo, digest) })
	return v
}

// blobInMemory looks for the blob in the in-memory layers, newest first:
// settled is false when they say nothing (the file then does).
func (l *Ledger) blobInMemory(repo, digest string) (known, settled bool) {
	for _, ly := range l.layers() {
		if ly.blobs[repo][digest] {
			return true, true
		}
		if ly.dropped[repo] {
			return false, true
		}
	}
	return false, false
}

// ReposWithBlob returns the repositories ("registry/repository") of registry
// known to hold the blob.
func (l *Ledger) ReposWithBlob(registry, digest string) []string {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cands := map[string]bool{}
	for _, ly := range l.layers() {
		for r := range ly.byReg[registry][digest] {
			cands[r] = true
		}
	}
	l.view(func(tx *bolt.Tx) {
		for _, r := range reposWithBlobTx(tx, registry, digest) {
			cands[r] = true
		}
	})
	var out []string
	for r := range cands {
		if l.hasBlob(r, digest) {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// SourceTags returns the tags of srcRepo ("registry/repository") that the
// ledger saw copied, sorted: what an offline verify checks for rules that
// would otherwise need the source's tag list.
func (l *Ledger) SourceTags(srcRepo string) []string {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	type cand struct{ tag, dst string }
	cands := map[cand]bool{}
	for _, ly := range l.layers() {
		for dst, e := range ly.manifests {
			if repo, tag, ok := splitTag(e.Src); ok && repo == srcRepo {
				cands[cand{tag, dst}] = true
			}
		}
	}
	l.view(func(tx *bolt.Tx) {
		prefix := append([]byte(srcRepo), 0)
		c := tx.Bucket(bucketBySrc).Cursor()
		for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			if tag, dst, ok := strings.Cut(string(k[len(prefix):]), "\x00"); ok {
				cands[cand{tag, dst}] = true
			}
		}
	})
	seen := map[string]bool{}
	var out []string
	for c := range cands {
		if seen[c.tag] {
			continue
		}
		if e, ok := l.manifest(c.dst); ok && e.Src == srcRepo+":"+c.tag {
			seen[c.tag] = true
			out = append(out, c.tag)
		}
	}
	sort.Strings(out)
	return out
}

func repoOf(ref string) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[:i]
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		return ref[:i]
	}
	return ref
}

// splitTag splits "registry/repo:tag" into its repository and tag; refs by
// digest and refs without a tag give ok false.
func splitTag(ref string) (repo, tag string, ok bool) {
	if strings.Contains(ref, "@") {
		return "", "", false
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i+1:], "/") {
		return "", "", false
	}
	return ref[:i], ref[i+1:], true
}
