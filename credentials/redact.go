package credentials

import (
	"io"
	"sync"
)

// Redactor is an io.Writer that replaces every known secret (and its base64
// forms) with "***" and strips the query string of every URL before it
// reaches the underlying writer: a last line of defence for every output,
// on top of never formatting a secret in the first place.
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
	if _, err := io.WriteString(r.w, r.secrets.Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
