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
	secrets *SecretSet
}

// NewRedactor wraps w; it scrubs whatever the set holds at the time of each
// write.
func NewRedactor(w io.Writer, secrets *SecretSet) *Redactor {
	return &Redactor{w: w, secrets: secrets}
}

// Write implements io.Writer. It reports len(p) written on success.
func (r *Redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	secrets := r.secrets.List()
	if len(secrets) == 0 {
		return r.w.Write(p)
	}
	s := string(p)
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	if _, err := io.WriteString(r.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
