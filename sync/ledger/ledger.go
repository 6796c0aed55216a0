// Package ledger is the digest ledger: an append-only JSON-lines file that
// remembers what each destination holds (manifest digests per reference,
// blobs per repository) so that a re-run can skip work without asking the
// destination, and verify can check a mirror without the source.
//
// The ledger is a hint, never the truth: entries a registry contradicts are
// invalidated and the work is redone. It holds references and digests only,
// never credentials.
package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// Version is the format version written in the header record.
const Version = 1

// record is one line of the file.
type record struct {
	T string `json:"t"` // "h" header, "m" manifest, "b" blobs, "x" invalidate
	// header
	V       int    `json:"v,omitempty"`
	Created string `json:"created,omitempty"`
	// manifest
	Dst       string `json:"dst,omitempty"`    // registry/repo:tag or registry/repo@digest
	Digest    string `json:"digest,omitempty"` // what the destination holds
	Src       string `json:"src,omitempty"`
	SrcDigest string `json:"srcDigest,omitempty"`
	Filter    string `json:"filter,omitempty"` // platform filter that produced Digest
	Time      string `json:"time,omitempty"`
	// blobs and invalidation
	Repo    string   `json:"repo,omitempty"` // registry/repo
	Digests []string `json:"d,omitempty"`
	Ref     string   `json:"ref,omitempty"` // with "x": this reference needs repair
}

// Entry is what the ledger knows of a destination reference.
type Entry struct {
	Digest    string
	Src       string
	SrcDigest string
	Filter    string
	Time      time.Time
}

// Ledger is an open, locked ledger file. A nil *Ledger is a valid ledger
// that knows nothing and records nothing (--no-ledger).
type Ledger struct {
	path     string
	lock     *flock.Flock // nil when read-only
	readOnly bool

	mu        sync.Mutex
	f         *os.File
	manifests map[string]Entry                      // dst ref → entry
	blobs     map[string]map[string]bool            // registry/repo → digests
	byReg     map[string]map[string]map[string]bool // registry → digest → repos
	repair    map[string]bool                       // refs verify found broken
	lines     int
	warnings  []string
	guard     func(string) string // the run's redactor; nil: none
	withheld  int                 // records not written because they held a secret
}

// Guard passes every record through redact (the run's output redactor)
// before it is written. A record the redactor would change holds a known
// secret: it is not written at all (a redacted reference would be a wrong
// one), and the run only forgets that fact — the next run asks the
// registry instead.
func (l *Ledger) Guard(redact func(string) string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.guard = redact
}

// Withheld returns how many records Guard kept out of the file.
func (l *Ledger) Withheld() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.withheld
}

// DefaultPath is the ledger used when --ledger is not given.
func DefaultPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the ledger (give --ledger or --no-ledger): %w", err)
	}
	return filepath.Join(dir, "imagesync", "ledger.jsonl"), nil
}

// ResolvePath returns the absolute path a ledger path stands for, with
// every symlink resolved (of the file when it exists, else of its folder).
func ResolvePath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if fi, err := os.Lstat(abs); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		// a dangling symlink: follow it one step, the target is created
		target, err := os.Readlink(abs)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(abs), target)
		}
		return ResolvePath(target)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// ErrLocked is returned when another run holds the ledger.
var ErrLocked = errors.New("ledger is in use by another imagesync run")

// ErrReadOnly is returned by the Record methods of a read-only ledger.
var ErrReadOnly = errors.New("ledger is open read-only")

// Open locks and loads the ledger at path, creating it (mode 0600) if
// needed. A torn last line is ignored with a warning (see Warnings).
func Open(path string) (*Ledger, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	// The lock (and every write, compaction included) goes to the file the
	// path resolves to: a symlink to a ledger in use meets the same lock.
	resolved, err := ResolvePath(path)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	path = resolved
	lock := flock.New(path + ".lock")
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("ledger %s: locking: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s (wait for it to finish, or give another --ledger or --no-ledger)", ErrLocked, path)
	}
	l := newLedger(path)
	l.lock = lock
	if err := l.load(); err != nil {
		lock.Unlock()
		return nil, err
	}
	if l.lines > 1000 && l.lines > 4*l.live() {
		if err := l.compact(); err != nil {
			l.warnings = append(l.warnings, fmt.Sprintf("ledger %s: compaction skipped: %v", path, err))
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	_ = f.Chmod(0o600)
	l.f = f
	if l.lines == 0 {
		if err := l.append(record{T: "h", V: Version, Created: now()}); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// OpenReadOnly loads the ledger at path for lookups only (plan): it
// creates, locks, repairs and compacts nothing, and its Record methods
// return ErrReadOnly. A missing ledger knows nothing. The writer only ever
// appends whole lines and compacts by renaming a new file into place, so
// what is read is a state the ledger was in; a torn last line (a write in
// progress) is ignored.
func OpenReadOnly(path string) (*Ledger, error) {
	if resolved, err := ResolvePath(path); err == nil {
		path = resolved
	} else if !errors.Is(err, os.ErrNotExist) { // a missing folder: nothing recorded yet
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	l := newLedger(path)
	l.readOnly = true
	if err := l.load(); err != nil {
		return nil, err
	}
	return l, nil
}

func newLedger(path string) *Ledger {
	return &Ledger{
		path:      path,
		manifests: map[string]Entry{},
		blobs:     map[string]map[string]bool{},
		byReg:     map[string]map[string]map[string]bool{},
		repair:    map[string]bool{},
	}
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

func (l *Ledger) load() error {
	data, err := os.ReadFile(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger %s: %w", l.path, err)
	}
	lines := bytes.Split(data, []byte("\n")) // ends with "" when the file ends with a newline
	for i, line := range lines {
		last := i == len(lines)-1 // only non-empty when the last write was cut short
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r record
		if err := json.Unmarshal(line, &r); err != nil {
			if last {
				l.warnings = append(l.warnings, fmt.Sprintf("ledger %s: ignoring the torn last line %d (an interrupted write)", l.path, i+1))
				if l.readOnly {
					break
				}
				// cut it off so the next append starts on a line of its own
				if err := os.Truncate(l.path, int64(len(data)-len(line))); err != nil {
					return fmt.Errorf("ledger %s: %w", l.path, err)
				}
				break
			}
			l.warnings = append(l.warnings, fmt.Sprintf("ledger %s:%d: ignoring an unreadable line", l.path, i+1))
			continue
		}
		if last && !l.readOnly { // complete record, missing only its newline
			if err := appendNewline(l.path); err != nil {
				return err
			}
		}
		if r.T == "h" && r.V > Version {
			return fmt.Errorf("ledger %s was written by a newer imagesync (format %d, this one reads %d): give another --ledger", l.path, r.V, Version)
		}
		l.apply(r)
		l.lines++
	}
	return nil
}

func appendNewline(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ledger %s: %w", path, err)
	}
	_, err = f.Write([]byte("\n"))
	return errors.Join(err, f.Close())
}

func (l *Ledger) apply(r record) {
	switch r.T {
	case "m":
		t, _ := time.Parse(time.RFC3339, r.Time)
		l.manifests[r.Dst] = Entry{Digest: r.Digest, Src: r.Src, SrcDigest: r.SrcDigest, Filter: r.Filter, Time: t}
		delete(l.repair, r.Dst)
	case "b":
		reg, _, _ := strings.Cut(r.Repo, "/")
		if l.blobs[r.Repo] == nil {
			l.blobs[r.Repo] = map[string]bool{}
		}
		if l.byReg[reg] == nil {
			l.byReg[reg] = map[string]map[string]bool{}
		}
		for _, d := range r.Digests {
			l.blobs[r.Repo][d] = true
			if l.byReg[reg][d] == nil {
				l.byReg[reg][d] = map[string]bool{}
			}
			l.byReg[reg][d][r.Repo] = true
		}
	case "x":
		prefix := r.Repo + ":"
		prefixD := r.Repo + "@"
		for k := range l.manifests {
			if strings.HasPrefix(k, prefix) || strings.HasPrefix(k, prefixD) {
				delete(l.manifests, k)
			}
		}
		reg, _, _ := strings.Cut(r.Repo, "/")
		for d := range l.blobs[r.Repo] {
			delete(l.byReg[reg][d], r.Repo)
		}
		delete(l.blobs, r.Repo)
		if r.Ref != "" {
			l.repair[r.Ref] = true
		}
	}
}

func (l *Ledger) live() int {
	n := len(l.manifests) + len(l.repair)
	return n + len(l.blobs)
}

// compact rewrites the ledger with one record per live fact, to a temp
// file renamed over the old one.
func (l *Ledger) compact() error {
	tmp, err := os.CreateTemp(filepath.Dir(l.path), ".ledger-*")
	if err != nil {
		return err
	}
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	write := func(r record) { _ = enc.Encode(r) }
	write(record{T: "h", V: Version, Created: now()})
	lines := 1
	for ref := range l.repair { // first: an "x" drops the facts of its repository written before it
		write(record{T: "x", Repo: repoOf(ref), Ref: ref})
		lines++
	}
	for repo, ds := range l.blobs {
		r := record{T: "b", Repo: repo}
		for d := range ds {
			r.Digests = append(r.Digests, d)
		}
		write(r)
		lines++
	}
	for dst, e := range l.manifests {
		write(record{T: "m", Dst: dst, Digest: e.Digest, Src: e.Src, SrcDigest: e.SrcDigest, Filter: e.Filter, Time: e.Time.UTC().Format(time.RFC3339)})
		lines++
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	tmp.Close()
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	l.lines = lines
	return nil
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

// append writes one record as one line in one write.
func (l *Ledger) append(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if l.guard != nil && l.guard(string(b)) != string(b) {
		l.withheld++
		return nil
	}
	b = append(b, '\n')
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("ledger %s: %w", l.path, err)
	}
	l.lines++
	return nil
}

// Warnings are the non-fatal problems met while loading.
func (l *Ledger) Warnings() []string {
	if l == nil {
		return nil
	}
	return l.warnings
}

// Path returns the file the ledger lives in.
func (l *Ledger) Path() string {
	if l == nil {
		return ""
	}
	return l.path
}

// Manifest returns what the ledger knows of a destination reference.
func (l *Ledger) Manifest(dst string) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.manifests[dst]
	return e, ok
}

// NeedsRepair reports whether verify found dst broken since it was last written.
func (l *Ledger) NeedsRepair(dst string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.repair[dst]
}

// HasBlob reports whether repo ("registry/repository") is known to hold the blob.
func (l *Ledger) HasBlob(repo, digest string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blobs[repo][digest]
}

// ReposWithBlob returns the repositories ("registry/repository") of registry
// known to hold the blob.
func (l *Ledger) ReposWithBlob(registry, digest string) []string {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for r := range l.byReg[registry][digest] {
		out = append(out, r)
	}
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
	seen := map[string]bool{}
	var out []string
	for _, e := range l.manifests {
		if tag, ok := strings.CutPrefix(e.Src, srcRepo+":"); ok && !strings.Contains(tag, "/") && !seen[tag] {
			seen[tag] = true
			out = append(out, tag)
		}
	}
	sort.Strings(out)
	return out
}

// RecordManifest remembers that dst holds e.Digest.
func (l *Ledger) RecordManifest(dst string, e Entry) error {
	return l.record(record{T: "m", Dst: dst, Digest: e.Digest, Src: e.Src, SrcDigest: e.SrcDigest, Filter: e.Filter, Time: now()})
}

// RecordBlobs remembers that repo holds the blobs.
func (l *Ledger) RecordBlobs(repo string, digests []string) error {
	if l == nil || len(digests) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var fresh []string
	for _, d := range digests {
		if !l.blobs[repo][d] {
			fresh = append(fresh, d)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	return l.recordLocked(record{T: "b", Repo: repo, Digests: fresh})
}

// Invalidate forgets everything about repo; with ref set, ref is also marked
// for repair (the next sync re-pushes it even if the manifest is there).
func (l *Ledger) Invalidate(repo, ref string) error {
	return l.record(record{T: "x", Repo: repo, Ref: ref})
}

// record learns r and writes it: nothing for a nil ledger, ErrReadOnly
// (and nothing learnt) for a read-only one.
func (l *Ledger) record(r record) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recordLocked(r)
}

func (l *Ledger) recordLocked(r record) error {
	if l.readOnly {
		return fmt.Errorf("%w: %s", ErrReadOnly, l.path)
	}
	l.apply(r)
	return l.append(r)
}

// Close syncs and unlocks the ledger.
func (l *Ledger) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.f != nil {
		err = errors.Join(l.f.Sync(), l.f.Close())
		l.f = nil
	}
	if l.lock != nil {
		err = errors.Join(err, l.lock.Unlock())
	}
	return err
}

var _ io.Closer = (*Ledger)(nil)
