package credentials

import (
	"io"
	"strings"
	"sync"
)

// Redactor is an io.Writer that replaces every known secret with "***"
// before it reaches the underlying writer: a last line of defence for logs
// and reports, on top of never formatting a secret in the first place.
type Redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
}

// NewRedactor wraps w. Secrets shorter than 4 characters are ignored: they
// would mangle ordinary text and protect nothing.
func NewRedactor(w io.Writer, secrets []string) *Redactor {
	r := &Redactor{w: w}
	for _, s := range secrets {
		if len(s) >= 4 {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// Write implements io.Writer. It reports len(p) written on success.
func (r *Redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.secrets) == 0 {
		return r.w.Write(p)
	}
	s := string(p)
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	if _, err := io.WriteString(r.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
