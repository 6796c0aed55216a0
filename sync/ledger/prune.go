package ledger

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// TagsIn returns what the ledger knows of the tags of a destination
// repository ("registry/repository"): tag → the entry imagesync recorded
// when it wrote (or found) it. What --prune may delete is among these.
func (l *Ledger) TagsIn(repo string) map[string]Entry {
	out := map[string]Entry{}
	if l == nil {
		return out
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cands := map[string]bool{}
	for _, ly := range l.layers() {
		for dst := range ly.manifests {
			if r, _, ok := splitTag(dst); ok && r == repo {
				cands[dst] = true
			}
		}
	}
	l.view(func(tx *bolt.Tx) {
		prefix := []byte(repo + ":")
		c := tx.Bucket(bucketManifests).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if r, _, ok := splitTag(string(k)); ok && r == repo {
				cands[string(k)] = true
			}
		}
	})
	for dst := range cands {
		if e, ok := l.manifest(dst); ok {
			_, tag, _ := splitTag(dst)
			out[tag] = e
		}
	}
	return out
}

// ForgetManifest drops what the ledger knows of a destination reference
// (--prune deleted it).
func (l *Ledger) ForgetManifest(dst string) error {
	if l == nil {
		return nil
	}
	return l.record(record{T: "d", Dst: dst})
}

// deleteManifestTx removes a "d" record's reference from the database.
func deleteManifestTx(tx *bolt.Tx, dst string) error {
	if old, ok := getManifest(tx, dst); ok {
		if repo, tag, ok := splitTag(old.Src); ok {
			if err := tx.Bucket(bucketBySrc).Delete(bySrcKey(repo, tag, dst)); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketManifests).Delete([]byte(dst))
}
