// Package credentials owns every credential lookup of a run: image-syncer
// auth files (longest registry/namespace prefix wins), and — behind the same
// Keychain interface — docker's config.json, then anonymous access.
package credentials

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/internal/envexpand"
	"github.com/imagesync/imagesync/registry/dockerhub"
)

// Entry is one key of an auth file.
type Entry struct {
	Key      string // normalised: "quay.io", "quay.io/coreos"
	Raw      string // the key as written
	Line     int
	Username string
	Password string
	Insecure bool
	// TLS files for this prefix (paths resolved against the auth file's folder).
	CA, Cert, KeyFile string
}

// HasCredentials reports whether the entry carries a username or password.
func (e Entry) HasCredentials() bool { return e.Username != "" || e.Password != "" }

// AuthFile is a parsed image-syncer auth file (or the `auth:` part of a legacy config file).
type AuthFile struct {
	File    string
	Entries []Entry // sorted by key length, longest first
	// Warnings are non-fatal observations (unknown fields) for the caller to log.
	Warnings []string
}

// LoadAuthFile reads an auth file (.json, .yaml or .yml).
func LoadAuthFile(path string, lookup func(string) (string, bool)) (*AuthFile, error) {
	n, err := cfgfile.Load(path)
	if err != nil {
		return nil, err
	}
	return AuthFromNode(path, n, lookup)
}

// AuthFromNode builds an AuthFile from a decoded map node. Every error names
// the file, the line and the key; all errors are returned at once.
func AuthFromNode(file string, n *cfgfile.Node, lookup func(string) (string, bool)) (*AuthFile, error) {
	af := &AuthFile{File: file}
	if n == nil || n.Kind == cfgfile.Null {
		return af, nil
	}
	if n.Kind != cfgfile.Map {
		return nil, &cfgfile.Error{File: file, Line: n.Line, Msg: "auth file must be a map from registry[/namespace] to {username, password, insecure}"}
	}
	var errs []error
	seen := map[string]int{}
	for _, kv := range n.Map {
		bad := func(line int, format string, a ...any) {
			errs = append(errs, &cfgfile.Error{File: file, Line: line, Key: kv.Key, Msg: fmt.Sprintf(format, a...)})
		}
		key, err := NormalizeKey(kv.Key)
		if err != nil {
			bad(kv.Line, "%v", err)
			continue
		}
		if prev, ok := seen[key]; ok {
			bad(kv.Line, "same registry/namespace as the key at line %d", prev)
			continue
		}
		seen[key] = kv.Line
		e := Entry{Key: key, Raw: kv.Key, Line: kv.Line}
		v := kv.Value
		if v == nil || v.Kind != cfgfile.Map {
			bad(kv.Line, "value must be a map with username, password and insecure")
			continue
		}
		for _, f := range v.Map {
			problem, known := e.setField(file, f, lookup)
			if !known {
				af.Warnings = append(af.Warnings, fmt.Sprintf("%s:%d: key %q: unknown field %q ignored", file, f.Line, kv.Key, f.Key))
			} else if problem != "" {
				bad(f.Line, "%s", problem)
			}
		}
		if (e.Cert == "") != (e.KeyFile == "") {
			bad(kv.Line, "cert and key go together: give both or neither")
			continue
		}
		af.Entries = append(af.Entries, e)
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	sort.SliceStable(af.Entries, func(i, j int) bool { return len(af.Entries[i].Key) > len(af.Entries[j].Key) })
	return af, nil
}

// Match returns the entry whose key is the longest prefix of
// registry/repository ending at a "/" boundary (or equal to it).
func (a *AuthFile) Match(registry, repository string) (Entry, bool) {
	if a == nil {
		return Entry{}, false
	}
	full := dockerhub.Canonical(registry) + "/" + repository
	for _, e := range a.Entries { // longest first
		if full == e.Key || strings.HasPrefix(full, e.Key+"/") {
			return e, true
		}
	}
	return Entry{}, false
}

// Secrets returns every password in the file, for redaction.
func (a *AuthFile) Secrets() []string {
	var out []string
	if a == nil {
		return nil
	}
	for _, e := range a.Entries {
		if e.Password != "" {
			out = append(out, e.Password)
		}
	}
	return out
}

// NormalizeKey turns an auth-file key into "registry[/namespace…]": a scheme
// and trailing slashes are dropped and Docker Hub's aliases become docker.io
// (so docker's "https://index.docker.io/v1/" key means docker.io).
func NormalizeKey(k string) (string, error) {
	s := strings.TrimSpace(k)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s = strings.TrimRight(s, "/")
	if s == "" {
		return "", fmt.Errorf("empty registry key")
	}
	reg, rest, _ := strings.Cut(s, "/")
	reg = dockerhub.Canonical(reg)
	if reg == dockerhub.Registry && rest == "v1" { // https://index.docker.io/v1/
		rest = ""
	}
	if strings.ContainsAny(s, " \t") {
		return "", fmt.Errorf("registry key must not contain spaces")
	}
	if rest == "" {
		return reg, nil
	}
	return reg + "/" + rest, nil
}

type errorList []error

func (l errorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

func (l errorList) Unwrap() []error { return l }

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errorList(errs)
}

// wholeReference reports whether v is exactly one variable reference
// ($NAME or ${NAME}): then naming the variable prints nothing secret.
func wholeReference(v string) bool {
	name, ok := strings.CutPrefix(v, "$")
	if !ok {
		return false
	}
	if inner, ok := strings.CutPrefix(name, "{"); ok {
		name, ok = strings.CutSuffix(inner, "}")
		if !ok {
			return false
		}
	}
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// setField reads one field of an entry. problem is what is wrong with it
// (for an error at its line); known is false for a field auth files do not
// have.
func (e *Entry) setField(file string, f cfgfile.KeyValue, lookup func(string) (string, bool)) (problem string, known bool) {
	switch f.Key {
	case "username", "password":
		if f.Value.Kind != cfgfile.String && f.Value.Kind != cfgfile.Null {
			// a number as password would be silently mangled by YAML: insist on quoting
			return fmt.Sprintf("%s must be a string (quote it)", f.Key), true
		}
		s, err := envexpand.Expand(f.Value.Str, lookup)
		if err != nil {
			if f.Key == "password" && !wholeReference(f.Value.Str) {
				// A "$" inside a password: the error would quote the
				// text after it, a part of the password. Say where
				// and what to do, never what.
				return `field "password": a "$" in it starts an environment variable reference that is not set; for a literal "$" write "$$"`, true
			}
			return fmt.Sprintf(`field %q: %v (for a literal "$" write "$$")`, f.Key, err), true
		}
		if f.Key == "username" {
			e.Username = s
		} else {
			e.Password = s
		}
	case "ca", "cert", "key":
		if f.Value.Kind != cfgfile.String || f.Value.Str == "" {
			return fmt.Sprintf("%s must be a file path", f.Key), true
		}
		p, err := envexpand.Expand(f.Value.Str, lookup)
		if err != nil {
			return fmt.Sprintf("%s: %v", f.Key, err), true
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), p)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Sprintf("%s: %v", f.Key, err), true
		}
		switch f.Key {
		case "ca":
			e.CA = p
		case "cert":
			e.Cert = p
		default:
			e.KeyFile = p
		}
	case "insecure":
		if f.Value.Kind != cfgfile.Bool {
			return "insecure must be true or false", true
		}
		e.Insecure = f.Value.Bool
	default:
		return "", false
	}
	return "", true
}
