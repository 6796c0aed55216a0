package ledger

import (
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

// bucketUploads holds the upload sessions of large blobs that were still
// open when last recorded, so that a run that was killed can resume one
// where the registry still has it: destination repository 0 digest → JSON
// {"loc","off","hs","time"}. It is created on the first session recorded; a
// ledger without it knows none. The session's location is an address of the
// destination registry itself, without query (see Upload.Loc); it is never
// exported or printed.
var bucketUploads = []byte("uploads")

// Upload is an upload session of a blob into a destination repository, as
// far as it had got when last recorded.
type Upload struct {
	// Loc is the session's location: the registry's upload URL, on the
	// registry's own host, without its query (the engine keeps no session
	// whose query looks like a signature; the query is never kept).
	Loc string
	// Off is how many bytes of the blob the registry had acknowledged.
	Off int64
	// Hash is the blob's hash state after its first Off bytes (the
	// marshalled sha256/sha512 state: a digest of bytes the registry
	// holds, no secret), so that a resume can read the source from Off
	// and still check the whole digest; empty when not known.
	Hash []byte
}

func uploadKey(repo, digest string) string { return repo + "\x00" + digest }

// UploadSession returns the recorded upload session of digest into repo
// ("registry/repository").
func (l *Ledger) UploadSession(repo, digest string) (Upload, bool) {
	if l == nil {
		return Upload{}, false
	}
	key := uploadKey(repo, digest)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ly := range l.layers() {
		if u, ok := ly.uploads[key]; ok {
			return u, u.Loc != ""
		}
	}
	var u Upload
	l.view(func(tx *bolt.Tx) {
		b := tx.Bucket(bucketUploads)
		if b == nil {
			return
		}
		var r record
		if v := b.Get([]byte(key)); v == nil || json.Unmarshal(v, &r) != nil {
			return
		}
		u = Upload{Loc: r.Loc, Off: r.Off, Hash: r.HS}
	})
	return u, u.Loc != "" && u.Off >= 0
}

// RecordUploadSession remembers where the upload of digest into repo stands
// (written with the next batch, as every fact). A read-only ledger records
// nothing.
func (l *Ledger) RecordUploadSession(repo, digest string, u Upload) error {
	if l == nil || l.readOnly || u.Loc == "" {
		return nil
	}
	return l.record(record{T: "u", Repo: repo, Digest: digest, Loc: u.Loc, Off: u.Off, HS: u.Hash, Time: now()})
}

// ForgetUploadSession drops the recorded upload session of digest into repo
// (the blob landed, or the registry no longer has the session).
func (l *Ledger) ForgetUploadSession(repo, digest string) error {
	if l == nil || l.readOnly {
		return nil
	}
	if _, ok := l.UploadSession(repo, digest); !ok {
		return nil
	}
	return l.record(record{T: "u", Repo: repo, Digest: digest})
}

// putUpload writes (or, without a location, deletes) a "u" record.
func putUpload(tx *bolt.Tx, r record) error {
	key := []byte(uploadKey(r.Repo, r.Digest))
	if r.Loc == "" {
		if b := tx.Bucket(bucketUploads); b != nil {
			return b.Delete(key)
		}
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketUploads)
	if err != nil {
		return err
	}
	v, err := json.Marshal(record{T: "u", Loc: r.Loc, Off: r.Off, HS: r.HS, Time: r.Time})
	if err != nil {
		return err
	}
	return b.Put(key, v)
}
