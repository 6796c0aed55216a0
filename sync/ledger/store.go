package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The database's buckets. A repository is stored once, in repos, and
// referred to elsewhere by a 4-byte id; digests are keyed by encDigest.
var (
	bucketMeta      = []byte("meta")      // "version", "created", "migrated"
	bucketManifests = []byte("manifests") // dst ref → JSON record {"t":"m",…} (without dst)
	bucketRepair    = []byte("repair")    // ref → "" (verify found it broken)
	bucketRepos     = []byte("repos")     // registry/repo → id
	bucketRepoIDs   = []byte("repoids")   // id → registry/repo
	bucketBlobs     = []byte("blobs")     // id digest → "": what a repository holds
	bucketByDigest  = []byte("bydigest")  // digest id → "": where a blob is (mount sources)
	bucketBySrc     = []byte("bysrc")     // source repo 0 tag 0 dst ref → "" (offline verify)
	allBuckets      = [][]byte{bucketMeta, bucketManifests, bucketRepair, bucketRepos, bucketRepoIDs, bucketBlobs, bucketByDigest, bucketBySrc}
)

// repoID returns the id of repo, creating one if create is set (else nil
// for an unknown repository).
func repoID(tx *bolt.Tx, repo string, create bool) ([]byte, error) {
	repos := tx.Bucket(bucketRepos)
	if id := repos.Get([]byte(repo)); id != nil {
		return id, nil
	}
	if !create {
		return nil, nil
	}
	n, err := repos.NextSequence()
	if err != nil {
		return nil, err
	}
	if n > math.MaxUint32 {
		return nil, errors.New("more than 2³² repositories")
	}
	id := binary.BigEndian.AppendUint32(nil, uint32(n))
	if err := repos.Put([]byte(repo), id); err != nil {
		return nil, err
	}
	return id, tx.Bucket(bucketRepoIDs).Put(id, []byte(repo))
}

func repoName(tx *bolt.Tx, id []byte) string { return string(tx.Bucket(bucketRepoIDs).Get(id)) }

// encDigest is a prefix-free key form of a digest: 0x01 and the 32 bytes of
// a sha256, or 0x02, the digest as written, and a 0 byte.
func encDigest(d string) []byte {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) == 64 && strings.ToLower(h) == h {
		if raw, err := hex.DecodeString(h); err == nil {
			return append([]byte{1}, raw...)
		}
	}
	b := append([]byte{2}, d...)
	return append(b, 0)
}

// decDigest reads an encDigest from the start of b and returns the rest.
func decDigest(b []byte) (d string, rest []byte, ok bool) {
	switch {
	case len(b) >= 33 && b[0] == 1:
		return "sha256:" + hex.EncodeToString(b[1:33]), b[33:], true
	case len(b) >= 2 && b[0] == 2:
		if i := bytes.IndexByte(b[1:], 0); i >= 0 {
			return string(b[1 : 1+i]), b[2+i:], true
		}
	}
	return "", nil, false
}

func blobKey(id []byte, digest string) []byte { return append(slices.Clip(id), encDigest(digest)...) }

func byDigestKey(digest string, id []byte) []byte { return append(encDigest(digest), id...) }

// hasBlobTx reports whether the database knows repo holds the blob.
func hasBlobTx(tx *bolt.Tx, repo, digest string) bool {
	id, _ := repoID(tx, repo, false)
	return id != nil && tx.Bucket(bucketBlobs).Get(blobKey(id, digest)) != nil
}

// reposWithBlobTx returns the repositories of registry the database knows
// hold the blob.
func reposWithBlobTx(tx *bolt.Tx, registry, digest string) []string {
	var out []string
	prefix := encDigest(digest)
	c := tx.Bucket(bucketByDigest).Cursor()
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		if name := repoName(tx, k[len(prefix):]); strings.HasPrefix(name, registry+"/") {
			out = append(out, name)
		}
	}
	return out
}

func bySrcKey(srcRepo, tag, dst string) []byte {
	return []byte(srcRepo + "\x00" + tag + "\x00" + dst)
}

func hasPrefix(k, prefix []byte) bool { return bytes.HasPrefix(k, prefix) }

func getManifest(tx *bolt.Tx, dst string) (Entry, bool) {
	v := tx.Bucket(bucketManifests).Get([]byte(dst))
	if v == nil {
		return Entry{}, false
	}
	var r record
	if json.Unmarshal(v, &r) != nil {
		return Entry{}, false
	}
	return entryOf(r), true
}

// applyTx writes one record's effect into the database.
func applyTx(tx *bolt.Tx, r record) error {
	man, rep := tx.Bucket(bucketManifests), tx.Bucket(bucketRepair)
	blobs, byDigest, bySrc := tx.Bucket(bucketBlobs), tx.Bucket(bucketByDigest), tx.Bucket(bucketBySrc)
	switch r.T {
	case "s":
		return putSeen(tx, r)
	case "u":
		return putUpload(tx, r)
	case "d":
		return deleteManifestTx(tx, r.Dst)
	case "m":
		if old, ok := getManifest(tx, r.Dst); ok {
			if repo, tag, ok := splitTag(old.Src); ok {
				if err := bySrc.Delete(bySrcKey(repo, tag, r.Dst)); err != nil {
					return err
				}
			}
		}
		v, err := json.Marshal(record{T: "m", Digest: r.Digest, Src: r.Src, SrcDigest: r.SrcDigest, Filter: r.Filter, Time: r.Time})
		if err != nil {
			return err
		}
		if err := man.Put([]byte(r.Dst), v); err != nil {
			return err
		}
		if repo, tag, ok := splitTag(r.Src); ok {
			if err := bySrc.Put(bySrcKey(repo, tag, r.Dst), nil); err != nil {
				return err
			}
		}
		return rep.Delete([]byte(r.Dst))
	case "b":
		id, err := repoID(tx, r.Repo, true)
		if err != nil {
			return err
		}
		for _, d := range r.Digests {
			if err := blobs.Put(blobKey(id, d), nil); err != nil {
				return err
			}
			if err := byDigest.Put(byDigestKey(d, id), nil); err != nil {
				return err
			}
		}
	case "x":
		type kv struct{ k, v []byte }
		var gone []kv
		for _, sep := range []string{":", "@"} {
			prefix := []byte(r.Repo + sep)
			c := man.Cursor()
			for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
				if repoOf(string(k)) == r.Repo { // not "repo:5000/…", another repository
					gone = append(gone, kv{bytes.Clone(k), bytes.Clone(v)})
				}
			}
		}
		for _, g := range gone {
			var old record
			if json.Unmarshal(g.v, &old) == nil {
				if repo, tag, ok := splitTag(old.Src); ok {
					if err := bySrc.Delete(bySrcKey(repo, tag, string(g.k))); err != nil {
						return err
					}
				}
			}
			if err := man.Delete(g.k); err != nil {
				return err
			}
		}
		id, err := repoID(tx, r.Repo, false)
		if err != nil {
			return err
		}
		var keys [][]byte
		if id != nil {
			c := blobs.Cursor()
			for k, _ := c.Seek(id); k != nil && hasPrefix(k, id); k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
		}
		for _, k := range keys {
			if d, _, ok := decDigest(k[len(id):]); ok {
				if err := byDigest.Delete(byDigestKey(d, id)); err != nil {
					return err
				}
			}
			if err := blobs.Delete(k); err != nil {
				return err
			}
		}
		if r.Ref != "" {
			return rep.Put([]byte(r.Ref), nil)
		}
	}
	return nil
}
