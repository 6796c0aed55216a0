package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Export writes everything the ledger knows as JSON lines, the format older
// versions kept the ledger in (a file of it given as --ledger is migrated
// back): a header, the repair marks, one line of blobs per repository, one
// line per destination manifest, each group sorted.
func (l *Ledger) Export(w io.Writer) error {
	if l == nil {
		return nil
	}
	if !l.readOnly {
		if err := l.flush(false); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	created := ""
	l.view(func(tx *bolt.Tx) { created = string(tx.Bucket(bucketMeta).Get([]byte("created"))) })
	if err := enc.Encode(record{T: "h", V: Version, Created: created}); err != nil {
		return err
	}
	var err error
	put := func(r record) {
		if err == nil {
			err = enc.Encode(r)
		}
	}
	if l.base != nil { // a JSON-lines ledger opened read-only
		ly := l.base
		for _, ref := range sortedKeys(ly.repair, func(v bool) bool { return v }) {
			put(record{T: "x", Repo: repoOf(ref), Ref: ref})
		}
		for _, repo := range sortedKeys(ly.blobs, func(m map[string]bool) bool { return len(m) > 0 }) {
			put(record{T: "b", Repo: repo, Digests: sortedKeys(ly.blobs[repo], func(v bool) bool { return v })})
		}
		for _, dst := range sortedKeys(ly.manifests, func(Entry) bool { return true }) {
			e := ly.manifests[dst]
			put(manifestRecord(dst, e))
		}
	}
	l.view(func(tx *bolt.Tx) {
		_ = tx.Bucket(bucketRepair).ForEach(func(k, _ []byte) error {
			put(record{T: "x", Repo: repoOf(string(k)), Ref: string(k)})
			return err
		})
		// blobs are grouped by repository id; the export sorts by name
		byRepo := map[string][]string{}
		var names []string
		var lastID []byte
		name := ""
		_ = tx.Bucket(bucketBlobs).ForEach(func(k, _ []byte) error {
			if len(k) < 4 {
				return nil
			}
			d, _, ok := decDigest(k[4:])
			if !ok {
				return nil
			}
			if !bytes.Equal(k[:4], lastID) {
				lastID, name = bytes.Clone(k[:4]), repoName(tx, k[:4])
				names = append(names, name)
			}
			byRepo[name] = append(byRepo[name], d)
			return nil
		})
		sort.Strings(names)
		for _, n := range names {
			ds := byRepo[n]
			sort.Strings(ds)
			put(record{T: "b", Repo: n, Digests: ds})
		}
		_ = tx.Bucket(bucketManifests).ForEach(func(k, v []byte) error {
			var r record
			if json.Unmarshal(v, &r) == nil {
				r.Dst = string(k)
				put(r)
			}
			return err
		})
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func manifestRecord(dst string, e Entry) record {
	t := ""
	if !e.Time.IsZero() {
		t = e.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
	}
	return record{T: "m", Dst: dst, Digest: e.Digest, Src: e.Src, SrcDigest: e.SrcDigest, Filter: e.Filter, Time: t}
}

func sortedKeys[V any](m map[string]V, keep func(V) bool) []string {
	var out []string
	for k, v := range m {
		if keep(v) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Stats is what `imagesync ledger stats` shows.
type Stats struct {
	Path         string `json:"path"`
	Format       string `json:"format"` // "database" or "json-lines (not migrated yet)"
	FileBytes    int64  `json:"fileBytes"`
	Created      string `json:"created,omitempty"`
	Migrated     string `json:"migrated,omitempty"`
	Manifests    int    `json:"manifests"`    // destination references
	Repositories int    `json:"repositories"` // repositories with known blobs
	BlobFacts    int    `json:"blobFacts"`    // (repository, blob) pairs
	Registries   int    `json:"registries"`   // destination registries with known blobs
	Repairs      int    `json:"repairs"`      // references verify marked for repair
}

// Stats counts what the ledger holds.
func (l *Ledger) Stats() (Stats, error) {
	s := Stats{Path: l.Path(), Format: "database"}
	if l == nil {
		return s, nil
	}
	if !l.readOnly {
		if err := l.flush(false); err != nil {
			return s, err
		}
	}
	if fi, err := os.Stat(l.path); err == nil {
		s.FileBytes = fi.Size()
	}
	if !l.store && l.base == nil {
		s.Format = "none (nothing recorded yet)"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ly := l.base; ly != nil {
		s.Format = "json-lines (read-only; the next sync migrates it)"
		s.Manifests = len(ly.manifests)
		regs := map[string]bool{}
		for repo, ds := range ly.blobs {
			if len(ds) > 0 {
				s.Repositories++
				s.BlobFacts += len(ds)
				reg, _, _ := strings.Cut(repo, "/")
				regs[reg] = true
			}
		}
		s.Registries = len(regs)
		for _, v := range ly.repair {
			if v {
				s.Repairs++
			}
		}
		return s, nil
	}
	var err error
	l.view(func(tx *bolt.Tx) {
		meta := tx.Bucket(bucketMeta)
		s.Created, s.Migrated = string(meta.Get([]byte("created"))), string(meta.Get([]byte("migrated")))
		s.Manifests = tx.Bucket(bucketManifests).Stats().KeyN
		s.Repairs = tx.Bucket(bucketRepair).Stats().KeyN
		regs := map[string]bool{}
		var lastID []byte
		err = tx.Bucket(bucketBlobs).ForEach(func(k, _ []byte) error {
			s.BlobFacts++
			if len(k) < 4 {
				return fmt.Errorf("ledger %s: damaged blob key", l.path)
			}
			if !bytes.Equal(k[:4], lastID) {
				lastID = bytes.Clone(k[:4])
				s.Repositories++
				reg, _, _ := strings.Cut(repoName(tx, lastID), "/")
				regs[reg] = true
			}
			return nil
		})
		s.Registries = len(regs)
	})
	return s, err
}
