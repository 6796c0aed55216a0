package credentials

import (
	"encoding/base64"
	"sort"
	"strings"
	"sync"
)

// SecretSet collects every secret a run learns (auth-file passwords,
// docker config passwords and tokens, credential-helper answers, bearer
// tokens) so that a Redactor can scrub them from any output, whenever they
// were learnt. Each secret is kept with its base64 forms.
type SecretSet struct {
	mu sync.RWMutex
	s  []string // longest first, so that a secret inside another is not half-replaced
}

// minSecret is the shortest value treated as a secret: shorter ones would
// mangle ordinary text (digests, words) and protect nothing.
const minSecret = 4

// Add remembers secrets and their base64 forms (standard and URL alphabets,
// padded or not).
func (s *SecretSet) Add(secrets ...string) {
	if s == nil {
		return
	}
	var all []string
	for _, v := range secrets {
		if len(v) < minSecret {
			continue
		}
		all = append(all, v)
		all = append(all, base64Forms(v)...)
	}
	s.add(all)
}

// AddCredentials remembers a password (with its base64 forms) and the
// base64 of "user:password", which is what travels in a Basic
// Authorization header and what docker's config.json stores as "auth".
func (s *SecretSet) AddCredentials(user, password string) {
	if s == nil || password == "" {
		return
	}
	s.Add(password)
	s.add(base64Forms(user + ":" + password))
}

func base64Forms(v string) []string {
	b := []byte(v)
	forms := []string{
		base64.StdEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
	}
	var out []string
	for _, f := range forms {
		if len(f) >= minSecret {
			out = append(out, f)
		}
	}
	return out
}

func (s *SecretSet) add(vs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for _, v := range vs {
		for _, have := range s.s {
			if have == v {
				continue next
			}
		}
		s.s = append(s.s, v)
	}
	sort.SliceStable(s.s, func(i, j int) bool { return len(s.s[i]) > len(s.s[j]) })
}

// List returns the secrets known so far, longest first.
func (s *SecretSet) List() []string {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]string(nil), s.s...)
}

// Redact returns text with every known secret replaced by "***" and the
// query string of every URL removed (signed URLs carry their signature
// there, upload URLs their state).
func (s *SecretSet) Redact(text string) string {
	for _, sec := range s.List() {
		text = strings.ReplaceAll(text, sec, "***")
	}
	return StripURLQueries(text)
}

// StripURLQueries removes the query string (and fragment) of every http://
// or https:// URL in text. A query ends at white space, a quote, an angle
// bracket or an escaped quote (\"), as URLs appear in logs, JSON and errors.
func StripURLQueries(text string) string {
	if !strings.Contains(text, "://") {
		return text
	}
	var b strings.Builder
	i := 0
	for i < len(text) {
		j := indexURL(text[i:])
		if j < 0 {
			b.WriteString(text[i:])
			break
		}
		start := i + j
		end := start
		for end < len(text) && !urlStop(text, end) && text[end] != '?' && text[end] != '#' {
			end++
		}
		b.WriteString(text[i:end])
		if end < len(text) && (text[end] == '?' || text[end] == '#') {
			for end < len(text) && !urlStop(text, end) {
				end++
			}
		}
		i = end
	}
	return b.String()
}

func indexURL(s string) int {
	a, b := strings.Index(s, "http://"), strings.Index(s, "https://")
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}

// urlStop reports whether text[i] ends a URL.
func urlStop(text string, i int) bool {
	switch c := text[i]; c {
	case ' ', '\t', '\n', '\r', '"', '\'', '<', '>', '`':
		return true
	case '\\':
		return i+1 < len(text) && (text[i+1] == '"' || text[i+1] == 'n' || text[i+1] == 't')
	}
	return false
}
