package config

import (
	"fmt"

	"github.com/imagesync/imagesync/credentials"
	"github.com/imagesync/imagesync/internal/cfgfile"
)

// Legacy is image-syncer's legacy config file (--config): one map with
// auth: (an auth file) and images: (a rule file). It is the one reader of
// that shape: sync, plan and verify (--config), a native file's auth-file:
// and convert all go through it.
type Legacy struct {
	File string
	Root *cfgfile.Node
	// Auth and Images are the values of auth: and images:, nil when absent.
	Auth, Images       *cfgfile.Node
	hasAuth, hasImages bool
}

// ReadLegacy decodes a legacy config file. keepDuplicates keeps repeated
// keys (marked Dup) for --skip-invalid-rules, which sets aside the rules
// under a repeated key instead of refusing the file.
func ReadLegacy(path string, keepDuplicates bool) (*Legacy, error) {
	load := cfgfile.Load
	if keepDuplicates {
		load = cfgfile.LoadKeepDuplicates
	}
	n, err := load(path)
	if err != nil {
		return nil, err
	}
	l := &Legacy{File: path, Root: n}
	l.Auth, l.hasAuth = n.Get("auth")
	l.Images, l.hasImages = n.Get("images")
	return l, nil
}

// IsMap reports whether the file is a map, as a legacy config must be.
func (l *Legacy) IsMap() bool { return l.Root.Kind == cfgfile.Map }

// HasImages reports whether the file has an images: key: it is a legacy
// config rather than an auth file.
func (l *Legacy) HasImages() bool { return l.hasImages }

// HasAuth reports whether the file has an auth: key.
func (l *Legacy) HasAuth() bool { return l.hasAuth }

// unknownKeys are warnings for the top-level keys other than auth: and
// images: (image-syncer ignored them too).
func (l *Legacy) unknownKeys() []string {
	var out []string
	for _, kv := range l.Root.Map {
		if kv.Key != "auth" && kv.Key != "images" {
			out = append(out, fmt.Sprintf("%s:%d: unknown top-level key %q ignored", l.File, kv.Line, kv.Key))
		}
	}
	return out
}

// nonRuleDuplicates are the repeated keys a skipping load still refuses:
// only a repeated rule key (under images:) is a rule's problem; a repeated
// top-level key, or one in auth: or an auth entry, stops the run.
func (l *Legacy) nonRuleDuplicates() []error {
	var errs []error
	for _, kv := range l.Root.Map {
		switch {
		case kv.Dup > 0:
			errs = append(errs, cfgfile.DuplicateError(l.File, kv))
		case kv.Key != "images":
			errs = append(errs, cfgfile.Duplicates(l.File, kv.Value)...)
		}
	}
	return errs
}

// LoadAuthOrLegacy reads an auth file, or the auth: part of image-syncer's
// legacy config file (a map with auth: and images:).
func LoadAuthOrLegacy(path string, lookup func(string) (string, bool)) (*credentials.AuthFile, error) {
	l, err := ReadLegacy(path, false)
	if err != nil {
		return nil, err
	}
	if l.HasImages() && l.HasAuth() {
		return credentials.AuthFromNode(path, l.Auth, lookup)
	}
	return credentials.AuthFromNode(path, l.Root, lookup)
}

// IsNativeFile reports whether path decodes to an imagesync config file
// (one with sync: entries), for the hint when one is given as --images.
func IsNativeFile(path string) bool {
	n, err := cfgfile.Load(path)
	return err == nil && IsNative(n)
}
