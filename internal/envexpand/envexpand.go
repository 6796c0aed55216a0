// Package envexpand expands $NAME and ${NAME} in configuration values, the
// way image-syncer's files use them, except that an unset variable is an
// error instead of a silent empty string.
package envexpand

import (
	"fmt"
	"os"
	"strings"
)

// Expand replaces $NAME and ${NAME} with the variable's value. "$$" is a
// literal "$"; a "$" followed by anything else than a name or "{" stays as
// it is. lookup nil means os.LookupEnv.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		next := s[i+1]
		switch {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", redactHint(s))
			}
			name := s[i+2 : i+2+end]
			if !isName(name) {
				return "", fmt.Errorf("malformed variable reference ${%s}", name)
			}
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("environment variable %q is not set", name)
			}
			b.WriteString(v)
			i += 2 + end
		case isNameStart(next):
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			name := s[i+1 : j]
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("environment variable %q is not set", name)
			}
			b.WriteString(v)
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// redactHint keeps error messages free of the value itself, which may be a
// password: only its length is shown.
func redactHint(s string) string { return fmt.Sprintf("<value of %d characters>", len(s)) }

func isName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isNameChar(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }
