package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// record is one line of the JSON-lines form: what older versions wrote as
// the ledger itself, and what `imagesync ledger export` writes.
type record struct {
	T string `json:"t"` // "h" header, "m" manifest, "b" blobs, "x" invalidate, "s" source seen, "d" deleted (--prune), "u" upload session (never exported)
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
	// upload session ("u", with Repo and Digest): none (deleted) without Loc
	Loc string `json:"loc,omitempty"`
	Off int64  `json:"off,omitempty"`
	HS  []byte `json:"hs,omitempty"` // the hash state after Off bytes
}

// readJSONL streams the records of a JSON-lines ledger to apply, in order,
// and returns how many it read. A torn last line (an interrupted write) and
// unreadable lines elsewhere are skipped with a warning; a header of a newer
// format is an error.
func readJSONL(path string, apply func(record), warnings *[]string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("ledger %s: %w", path, err)
	}
	defer f.Close()
	return readJSONLFrom(f, path, apply, warnings)
}

// readJSONLFrom is readJSONL on a reader; path names it in messages.
func readJSONLFrom(r io.Reader, path string, apply func(record), warnings *[]string) (int, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	n := 0
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return n, fmt.Errorf("ledger %s: %w", path, err)
		}
		last := errors.Is(err, io.EOF) // no newline: the last line
		if len(bytes.TrimSpace(line)) > 0 {
			var r record
			if jerr := json.Unmarshal(line, &r); jerr != nil {
				if last {
					*warnings = append(*warnings, fmt.Sprintf("ledger %s: ignoring the torn last line %d (an interrupted write)", path, lineNo))
				} else {
					*warnings = append(*warnings, fmt.Sprintf("ledger %s:%d: ignoring an unreadable line", path, lineNo))
				}
			} else {
				if r.T == "h" && r.V > Version {
					return n, fmt.Errorf("ledger %s was written by a newer imagesync (format %d, this one reads %d): give another --ledger", path, r.V, Version)
				}
				apply(r)
				n++
			}
		}
		if last {
			return n, nil
		}
	}
}
