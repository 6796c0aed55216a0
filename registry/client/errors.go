package client

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/imagesync/imagesync/oci"
)

// Error is a registry's answer that was not the expected status.
type Error struct {
	Method  string
	Target  string // host and path; never the query string or a credential
	Status  int
	Codes   []string // registry error codes: MANIFEST_UNKNOWN, DENIED, …
	Message string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.Target, e.Status, strings.ToLower(http.StatusText(e.Status)))
	if len(e.Codes) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(e.Codes, ","))
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// HasCode reports whether the registry answered with one of the error
// codes (go-containerregistry's transport names them).
func (e *Error) HasCode(codes ...transport.ErrorCode) bool {
	for _, c := range e.Codes {
		for _, code := range codes {
			if c == string(code) {
				return true
			}
		}
	}
	return false
}

// newError reads at most 64 KiB of an error body and closes it.
func newError(resp *http.Response) *Error {
	e := &Error{Method: resp.Request.Method, Target: resp.Request.URL.Host + resp.Request.URL.Path, Status: resp.StatusCode}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var parsed struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &parsed) == nil {
		var msgs []string
		for _, x := range parsed.Errors {
			e.Codes = append(e.Codes, x.Code)
			if x.Message != "" {
				msgs = append(msgs, x.Message)
			}
		}
		e.Message = printable(strings.Join(msgs, "; "), 1024)
	}
	for i, c := range e.Codes {
		e.Codes[i] = printable(c, 64)
	}
	return e
}

// printable makes registry-supplied text safe to print: control characters
// (a terminal escape sequence, a forged log line) become spaces, and it is
// cut at max bytes.
func printable(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return s
}

// IsNotFound reports a 404 or a *_UNKNOWN answer, or an error of another
// store (an image layout) that says NotFound.
func IsNotFound(err error) bool { return oci.IsNotFound(err) }

// NotFound reports a 404 or a *_UNKNOWN answer (see oci.IsNotFound).
func (e *Error) NotFound() bool {
	return e.Status == http.StatusNotFound || e.HasCode(transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode)
}

// status returns the HTTP status of a registry or token-server error, or 0.
func status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// IsUnauthorized reports a 401 or 403, from the registry or its token server.
func IsUnauthorized(err error) bool {
	s := status(err)
	return s == http.StatusUnauthorized || s == http.StatusForbidden
}

// IsTransientStatus reports a status worth retrying.
func IsTransientStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// IsTransientNetwork reports a network failure worth retrying: refused or
// reset connections, an EOF in the middle of a body, timeouts (not a DNS
// name that does not exist).
func IsTransientNetwork(err error) bool {
	if err == nil || isCertificateError(err) || errors.Is(err, ErrRedirectLoop) || isNoSuchHost(err) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe") ||
		strings.Contains(s, "server closed idle connection") || strings.Contains(s, "transport connection broken")
}

// IsPermanent reports an error that another attempt will not fix: bad
// credentials, missing images, invalid content. Everything else (network,
// 429, 5xx) is worth a retry later in the run.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var perm *PermanentError
	if errors.As(err, &perm) {
		return true
	}
	if errors.Is(err, ErrInvalidReference) || errors.Is(err, ErrRedirectLoop) || isCertificateError(err) || isNoSuchHost(err) {
		return true // a DNS name that does not exist does not come to exist within a run
	}
	if s := status(err); s != 0 {
		return !IsTransientStatus(s)
	}
	return false
}

// isCertificateError reports a TLS certificate the client does not accept
// (unknown authority, wrong host name, expired): retrying changes nothing.
func isCertificateError(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostErr) || errors.As(err, &invalid) ||
		strings.Contains(err.Error(), "certificate signed by unknown authority")
}

// PermanentError marks an error found by imagesync itself (an unsupported
// manifest, a digest that does not match) as not worth retrying
// (oci.PermanentError).
type PermanentError = oci.PermanentError

// Permanent wraps err so that IsPermanent reports true.
func Permanent(err error) error { return oci.Permanent(err) }
