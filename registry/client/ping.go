package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// maxPingBody bounds what is read of a /v2/ answer: nothing in it is used.
const maxPingBody = 64 << 10

// maxPingTime bounds one ping, body included, when no shorter --timeout is set.
const maxPingTime = 30 * time.Second

// Schemes returns the schemes imagesync may use for a registry host, in
// order of preference. HTTPS always comes first; plain HTTP is allowed only
// for a registry marked insecure, or on a loopback address (as Docker does).
// Unlike go-containerregistry, a private (RFC 1918) address gets no plain
// HTTP fallback: credentials would travel in clear text.
func Schemes(host string, insecure bool) []string {
	if insecure || IsLoopback(host) {
		return []string{"https", "http"}
	}
	return []string{"https"}
}

// IsLoopback reports whether host[:port] names the local machine:
// localhost, 127.0.0.0/8 or ::1.
func IsLoopback(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// pingHost does GET /v2/ on each allowed scheme in turn and returns the
// challenge of the first that answers 200 or 401. The body is capped and the
// whole exchange is timed out: an endless or stalled answer cannot hang it.
func pingHost(ctx context.Context, rt http.RoundTripper, host string, insecure bool, timeout time.Duration) (*transport.Challenge, string, error) {
	if timeout <= 0 || timeout > maxPingTime {
		timeout = maxPingTime
	}
	schemes := Schemes(host, insecure)
	perr := &pingError{httpsOnly: len(schemes) == 1}
	pctx := ctx
	// With a plain HTTP fallback, both pings go out at once (a ping carries
	// no credentials): HTTPS still wins when it answers, and a plain
	// registry costs one round trip, not a failed handshake and then one.
	var fallback chan pingResult
	if len(schemes) == 2 {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		fallback = make(chan pingResult, 1)
		go func() {
			// One try: a registry that is up answers at once; the retries
			// (as before, and only after HTTPS failed other than at its
			// dial) come below.
			ch, err := pingOnce(withoutRetries(fctx), rt, schemes[1], host, timeout)
			fallback <- pingResult{ch, err}
		}()
	}
	for i, scheme := range schemes {
		var ch *transport.Challenge
		var err error
		if i == 1 && fallback != nil {
			r := <-fallback
			ch, err = r.ch, r.err
			if err != nil && pctx == ctx && ctx.Err() == nil && !isNoSuchHost(err) {
				ch, err = pingOnce(pctx, rt, scheme, host, timeout) // with its retries, as before
			}
		} else {
			ch, err = pingOnce(pctx, rt, scheme, host, timeout)
		}
		if err == nil {
			return ch, scheme, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		perr.tried = append(perr.tried, schemeError{url: scheme + "://" + host + "/v2/", err: err})
		if isNoSuchHost(err) {
			break // the name does not exist: no scheme will fare better
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			pctx = withoutRetries(ctx) // nothing listened on the port: one more try on it is enough
		}
	}
	return nil, "", perr
}

type pingResult struct {
	ch  *transport.Challenge
	err error
}

// pingError says what a failed ping tried, as crane does: each URL with
// the reason it failed ("https://h/v2/: connection refused; http://h/v2/:
// connection refused"). It unwraps to every underlying error, so that the
// retry policy sees what they are.
type pingError struct {
	tried     []schemeError
	httpsOnly bool // plain HTTP was not allowed
}

type schemeError struct {
	url string
	err error
}

func (e *pingError) Error() string {
	parts := make([]string, len(e.tried))
	for i, t := range e.tried {
		parts[i] = t.url + ": " + reason(t.err)
	}
	s := strings.Join(parts, "; ")
	if e.httpsOnly && !isNoSuchHost(e.tried[len(e.tried)-1].err) {
		s += " (plain HTTP is tried only for loopback addresses and registries marked insecure: true)"
	}
	return s
}

func (e *pingError) Unwrap() []error {
	out := make([]error, len(e.tried))
	for i, t := range e.tried {
		out[i] = t.err
	}
	return out
}

// reason is the short form of a network error: "connection refused", "no
// such host", "i/o timeout", else the error without the request it
// concerns (the URL is said once, before it).
func reason(err error) string {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "no such host"
		}
		return "cannot resolve " + dns.Name + ": " + dns.Err
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return err.Error()
}

// isNoSuchHost reports a DNS answer that the name does not exist: another
// attempt, now or later in the run, will not change it.
func isNoSuchHost(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns) && dns.IsNotFound
}

func pingOnce(ctx context.Context, rt http.RoundTripper, scheme, host string, timeout time.Duration) (*transport.Challenge, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// Drain a little so the connection can be reused; never more, and not
	// past the deadline: the status and headers are all a ping needs.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPingBody))
	insecure := resp.Request.URL.Scheme == "http"
	switch resp.StatusCode {
	case http.StatusOK:
		return &transport.Challenge{Insecure: insecure}, nil
	case http.StatusUnauthorized:
		ch := pickChallenge(resp.Header.Values("WWW-Authenticate"))
		ch.Insecure = insecure
		return ch, nil
	}
	return nil, &Error{Method: http.MethodGet, Target: host + "/v2/", Status: resp.StatusCode}
}

// pickChallenge parses WWW-Authenticate headers and returns the first Basic
// or Bearer challenge (else the first one).
func pickChallenge(headers []string) *transport.Challenge {
	var all []*transport.Challenge
	for _, h := range headers {
		all = append(all, parseChallenges(h)...)
	}
	for _, c := range all {
		if s := strings.ToLower(c.Scheme); s == "basic" || s == "bearer" {
			return c
		}
	}
	if len(all) > 0 {
		return all[0]
	}
	return &transport.Challenge{Scheme: "basic"} // a 401 without a challenge: try Basic
}

// parseChallenges reads `Scheme k="v", k2=v2, Scheme2 …` (RFC 7235).
func parseChallenges(h string) []*transport.Challenge {
	var out []*transport.Challenge
	var cur *transport.Challenge
	s := h
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out
		}
		tok := token(s)
		if tok == "" {
			return out // not a token: give up on the rest
		}
		rest := strings.TrimLeft(s[len(tok):], " \t")
		if strings.HasPrefix(rest, "=") && cur != nil && !strings.HasPrefix(rest, "==") {
			// a parameter of the current challenge
			rest = strings.TrimLeft(rest[1:], " \t")
			var val string
			if strings.HasPrefix(rest, `"`) {
				var b strings.Builder
				i := 1
				for ; i < len(rest) && rest[i] != '"'; i++ {
					if rest[i] == '\\' && i+1 < len(rest) {
						i++
					}
					b.WriteByte(rest[i])
				}
				val, rest = b.String(), rest[min(i+1, len(rest)):]
			} else {
				val = token(rest)
				rest = rest[len(val):]
			}
			cur.Parameters[strings.ToLower(tok)] = val
			s = rest
			continue
		}
		cur = &transport.Challenge{Scheme: tok, Parameters: map[string]string{}}
		out = append(out, cur)
		s = rest
	}
}

// token returns the leading RFC 7230 token of s (token68 characters included).
func token(s string) string {
	i := 0
	for i < len(s) && strings.IndexByte("!#$%&'*+-.^_`|~/", s[i]) >= 0 || i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
		i++
	}
	return s[:i]
}

// maxRedirects bounds the redirects one request follows.
const maxRedirects = 10

// ErrRedirectLoop is the (permanent) error of a request redirected too often.
var ErrRedirectLoop = errors.New("stopped after 10 redirects (a redirect loop?)")

// checkRedirect is the redirect policy of every client: at most 10, then a
// permanent error (a loop does not end by retrying).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return Permanent(ErrRedirectLoop)
	}
	return nil
}
