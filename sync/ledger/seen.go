package ledger

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketSeen holds when each source reference was first seen at its
// current digest (--min-age): source ref → JSON {"srcDigest","time"}. It is
// created on the first writable open; a ledger without it knows nothing.
var bucketSeen = []byte("seen")

// Seen is when a source reference was first seen at a digest.
type Seen struct {
	Digest string
	Time   time.Time
}

// FirstSeen returns when the source reference src was first seen at the
// digest it had when last recorded (RecordSeen).
func (l *Ledger) FirstSeen(src string) (Seen, bool) {
	if l == nil {
		return Seen{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstSeen(src)
}

func (l *Ledger) firstSeen(src string) (Seen, bool) {
	for _, ly := range l.layers() {
		if s, ok := ly.seen[src]; ok {
			return s, true
		}
	}
	var s Seen
	var ok bool
	l.view(func(tx *bolt.Tx) {
		b := tx.Bucket(bucketSeen)
		if b == nil {
			return
		}
		v := b.Get([]byte(src))
		var r record
		if v == nil || json.Unmarshal(v, &r) != nil {
			return
		}
		s, ok = seenOf(r), true
	})
	return s, ok
}

// RecordSeen notes that src is at digest now, and returns since when it has
// been: the time recorded before when it was already at this digest, else
// now (a tag that moved starts again). A read-only ledger (plan) records
// nothing and answers the same.
func (l *Ledger) RecordSeen(src, digest string) (time.Time, error) {
	t := time.Now().UTC()
	if l == nil {
		return t, nil
	}
	if s, ok := l.FirstSeen(src); ok && s.Digest == digest {
		return s.Time, nil
	}
	if l.readOnly {
		return t, nil
	}
	return t, l.record(record{T: "s", Src: src, SrcDigest: digest, Time: t.Format(time.RFC3339Nano)})
}

func seenOf(r record) Seen {
	t, _ := time.Parse(time.RFC3339Nano, r.Time)
	return Seen{Digest: r.SrcDigest, Time: t}
}

// putSeen writes a "s" record into the database.
func putSeen(tx *bolt.Tx, r record) error {
	b, err := tx.CreateBucketIfNotExists(bucketSeen)
	if err != nil {
		return err
	}
	v, err := json.Marshal(record{T: "s", SrcDigest: r.SrcDigest, Time: r.Time})
	if err != nil {
		return err
	}
	return b.Put([]byte(r.Src), v)
}
