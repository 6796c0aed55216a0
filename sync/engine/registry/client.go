// Package registry is imagesync's registry client: one place owns each
// registry host (scheme, ping, auth, transport, retries), and a Repo offers
// the handful of distribution-API calls the engine needs, with manifests kept
// as raw bytes so that digests never change.
//
// Authentication is go-containerregistry's transport package (Ping, Exchange,
// FromToken), used so that a registry is pinged once per run and a token is
// fetched once per repository scope per run — its remote package pings on
// every new transport. The upload path is ours: POST (with a cross-repository
// mount when a candidate is known) + one monolithic PUT, instead of
// HEAD + POST + PATCH + PUT.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/imagesync/imagesync/credentials"
)

// Client is shared by every job of a run.
type Client struct {
	kc        credentials.Keychain
	log       *slog.Logger
	userAgent string
	policy    RetryPolicy
	Stats     Stats

	secrets *credentials.SecretSet // tokens learnt are added for redaction

	tlsMu      sync.Mutex
	transports map[string]http.RoundTripper // retrying, per TLS settings (insecure × files)
	others     map[string]http.RoundTripper // per host reached besides the registries (realms, redirects)

	hostPolicy HostPolicy
	timeout    time.Duration
	limits     *hostTable // per URL host: concurrency, rate, quota

	mu     sync.Mutex
	hosts  map[string]*host
	scoped map[string]*scopedTransport
	repos  map[string]*Repo
}

// Option configures a Client.
type Option func(*Client)

// WithLogger sets the logger for request debugging (level debug).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithRetryPolicy sets the per-request retry policy.
func WithRetryPolicy(p RetryPolicy) Option { return func(c *Client) { c.policy = p } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithHostPolicy bounds the requests to each registry host.
func WithHostPolicy(p HostPolicy) Option { return func(c *Client) { c.hostPolicy = p } }

// WithSecrets adds every token the run fetches to s, so that the output
// redactor scrubs them.
func WithSecrets(s *credentials.SecretSet) Option { return func(c *Client) { c.secrets = s } }

// WithTimeout fails a connection attempt, or a request that makes no
// progress (nothing read or written), after d. There is no overall deadline:
// a large blob takes as long as it takes.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a Client resolving credentials through kc.
func New(kc credentials.Keychain, opts ...Option) *Client {
	c := &Client{
		kc:         kc,
		policy:     DefaultRetryPolicy,
		userAgent:  "imagesync",
		hosts:      map[string]*host{},
		scoped:     map[string]*scopedTransport{},
		repos:      map[string]*Repo{},
		transports: map[string]http.RoundTripper{},
		others:     map[string]http.RoundTripper{},
		timeout:    2 * time.Minute,
	}
	for _, o := range opts {
		o(c)
	}
	c.limits = &hostTable{policy: c.hostPolicy}
	if c.policy.Attempts < 1 {
		c.policy.Attempts = 1
	}
	return c
}

// tlsTransport returns the retrying transport for one TLS setting, built
// once per run.
func (c *Client) tlsTransport(skipVerify bool, files credentials.TLS) (http.RoundTripper, error) {
	key := tlsID(files, skipVerify)
	c.tlsMu.Lock()
	defer c.tlsMu.Unlock()
	if rt, ok := c.transports[key]; ok {
		return rt, nil
	}
	rt, err := c.newTransport(skipVerify, files)
	if err != nil {
		return nil, err
	}
	c.transports[key] = rt
	return rt, nil
}

// tlsID names one TLS identity: the files, and whether verification is off.
func tlsID(files credentials.TLS, insecure bool) string {
	if insecure {
		return files.ID() + "\x00insecure"
	}
	return files.ID()
}

// HostTLS is implemented by keychains that know the TLS settings of a bare
// host (certs.d, --ca-file, an auth-file entry for the host): the settings
// used for a request to a host other than the registry's own (its token
// realm, a redirect to storage).
type HostTLS interface {
	HostTLS(host string) (files credentials.TLS, insecure bool)
}

// hostRouter picks the TLS settings of each request from the request's own
// host: the registry's settings (its CA, client certificate, insecure) for
// the registry itself, and that host's own settings for any other host (a
// token realm, a storage redirect). "insecure: true" for one registry never
// covers another host.
type hostRouter struct {
	c    *Client
	host string // the registry's host[:port], as in request URLs
	own  http.RoundTripper
}

func (h *hostRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	if sameHost(r.URL, h.host) {
		return h.own.RoundTrip(r)
	}
	rt, err := h.c.otherHost(r.URL.Host)
	if err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("TLS settings for %s: %w", r.URL.Host, err)
	}
	return rt.RoundTrip(r)
}

// otherHost returns the transport for a host reached without being the
// registry in use (a token realm, a storage redirect), by that host's own
// TLS settings, looked up once per run.
func (c *Client) otherHost(host string) (http.RoundTripper, error) {
	c.tlsMu.Lock()
	rt, ok := c.others[host]
	c.tlsMu.Unlock()
	if ok {
		return rt, nil
	}
	var files credentials.TLS
	insecure := false
	if ht, ok := c.kc.(HostTLS); ok {
		files, insecure = ht.HostTLS(host)
	}
	rt, err := c.tlsTransport(insecure, files)
	if err != nil {
		return nil, err
	}
	c.tlsMu.Lock()
	c.others[host] = rt
	c.tlsMu.Unlock()
	return rt, nil
}

// sameHost compares a URL's host with a registry host, default ports
// included (registry.example and registry.example:443 over https).
func sameHost(u *url.URL, host string) bool {
	if strings.EqualFold(u.Host, host) {
		return true
	}
	port := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	withPort := func(h string) string {
		if _, _, err := net.SplitHostPort(h); err == nil {
			return strings.ToLower(h)
		}
		return strings.ToLower(net.JoinHostPort(strings.Trim(h, "[]"), port))
	}
	return withPort(u.Host) == withPort(host)
}

// newTransport builds a retrying transport. Extra CA files are trusted on
// top of the system's roots; a client certificate is presented when given.
// skipVerify is set only for registries marked insecure.
func (c *Client) newTransport(skipVerify bool, files credentials.TLS) (http.RoundTripper, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
	if len(files.CAFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range files.CAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("CA file: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s: no PEM certificate in it", f)
			}
		}
		tlsConfig.RootCAs = pool
	}
	if files.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", files.CertFile, err)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           idleDialer(c.timeout),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: c.timeout,
		TLSClientConfig:       tlsConfig,
	}
	return &userAgent{ua: c.userAgent, inner: &retryTransport{inner: base, policy: c.policy, stats: &c.Stats, log: c.log, hosts: c.limits}}, nil
}

type userAgent struct {
	ua    string
	inner http.RoundTripper
}

func (u *userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("User-Agent") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("User-Agent", u.ua)
	}
	return u.inner.RoundTrip(r)
}

// host is one registry endpoint. Its first successful ping decides the
// scheme and the challenge for the run; a failed ping is not kept, so a
// registry that comes up late is pinged again by the next request.
type host struct {
	reg      name.Registry
	base     http.RoundTripper
	insecure bool
	timeout  time.Duration

	chunked atomic.Bool  // the registry refused a monolithic upload: PATCH from now on
	chunk   atomic.Int64 // PATCH size when a registry refused a larger one (0: chunkSize)

	mu      sync.Mutex
	pinging chan struct{} // closed when the ping in flight ends
	lastErr error         // the error of the ping that just ended
	ch      *transport.Challenge
	scheme  string
}

func (c *Client) host(registry string, insecure bool, files credentials.TLS) (*host, error) {
	key := registry + "\x00" + tlsID(files, insecure)
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.hosts[key]; ok {
		return h, nil
	}
	// name.Insecure is not given: the scheme is ours to decide (see Schemes).
	reg, err := name.NewRegistry(registry, name.WeakValidation)
	if err != nil {
		return nil, Permanent(fmt.Errorf("registry %q: %w", registry, err))
	}
	own, err := c.tlsTransport(insecure, files)
	if err != nil {
		return nil, Permanent(fmt.Errorf("registry %s: %w", registry, err))
	}
	h := &host{reg: reg, base: &hostRouter{c: c, host: reg.RegistryStr(), own: own}, insecure: insecure, timeout: c.timeout}
	c.hosts[key] = h
	return h, nil
}

// chunkLen is the size of the next PATCH to this host.
func (h *host) chunkLen() int {
	if n := h.chunk.Load(); n > 0 {
		return int(n)
	}
	return chunkSize
}

// shrinkChunk halves the PATCH size after a chunk of refused bytes was
// refused as too large.
func (h *host) shrinkChunk(refused int) {
	next := int64(max(minChunkSize, refused/2))
	for {
		cur := h.chunk.Load()
		if cur != 0 && cur <= next {
			return
		}
		if h.chunk.CompareAndSwap(cur, next) {
			return
		}
	}
}

// ping pings the registry unless a ping already succeeded. Concurrent
// callers share one ping; only a success is remembered.
func (h *host) ping(ctx context.Context) error {
	for {
		h.mu.Lock()
		if h.ch != nil {
			h.mu.Unlock()
			return nil
		}
		if wait := h.pinging; wait != nil {
			h.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return ctx.Err()
			}
			h.mu.Lock()
			err, ok := h.lastErr, h.ch != nil
			h.mu.Unlock()
			if ok {
				return nil
			}
			if err != nil {
				return err // the ping we waited for failed: so do we, without a new one
			}
			continue
		}
		done := make(chan struct{})
		h.pinging = done
		h.mu.Unlock()

		ch, scheme, err := pingHost(ctx, h.base, h.reg.RegistryStr(), h.insecure, h.timeout)
		h.mu.Lock()
		h.pinging = nil
		if err == nil {
			h.ch, h.scheme, h.lastErr = ch, scheme, nil
		} else {
			h.lastErr = fmt.Errorf("registry %s is not reachable: %w%s", h.reg.RegistryStr(), err, tlsHint(err, h.reg.RegistryStr()))
			err = h.lastErr
		}
		close(done)
		h.mu.Unlock()
		return err
	}
}

// scopedTransport is an authenticated transport for one set of scopes: one
// token request per scope per run, renewed shortly before the token expires
// (so that no request, least of all a streamed upload, meets an expired one).
type scopedTransport struct {
	mu      sync.Mutex
	rt      http.RoundTripper
	expires time.Time // zero: never (basic auth, anonymous)
}

// tokenMargin renews a token this long before it expires.
const tokenMargin = 10 * time.Second

func (c *Client) transport(ctx context.Context, h *host, access credentials.Access, scopes []string) (http.RoundTripper, error) {
	if err := h.ping(ctx); err != nil {
		return nil, err
	}
	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	key := h.reg.RegistryStr() + "\x00" + h.scheme + "\x00" + access.ID + "\x00" + strings.Join(scopes, " ")
	c.mu.Lock()
	st, ok := c.scoped[key]
	if !ok {
		st = &scopedTransport{}
		c.scoped[key] = st
	}
	c.mu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	if st.rt != nil && (st.expires.IsZero() || time.Now().Before(st.expires)) {
		return st.rt, nil
	}
	tok := &transport.Token{}
	var expires time.Time
	if strings.EqualFold(h.ch.Scheme, "bearer") {
		t, err := transport.Exchange(ctx, h.reg, access.Auth, h.base, scopes, h.ch)
		if err != nil {
			// not cached: the next caller tries again
			return nil, fmt.Errorf("token for %s (%s): %w", h.reg.RegistryStr(), access.Source, err)
		}
		tok = t
		if tok.Token == "" {
			tok.Token = tok.AccessToken
		}
		ttl := time.Duration(tok.ExpiresIn) * time.Second
		if ttl <= 0 {
			ttl = 60 * time.Second // the token spec's default
		}
		expires = time.Now().Add(max(ttl-tokenMargin, ttl/2))
		c.Stats.Tokens.Add(1)
		c.secrets.Add(tok.Token, tok.AccessToken, tok.RefreshToken)
	}
	rt, err := transport.FromToken(h.reg, access.Auth, h.base, h.ch, tok)
	if err != nil {
		return nil, err
	}
	st.rt, st.expires = rt, expires
	return rt, nil
}

// Repo returns the repository handle; credentials are resolved once per
// repository per run. A push handle asks for pull and push in one token, so
// a destination costs one token request however it is used.
func (c *Client) Repo(ctx context.Context, registry, repository string, push bool) (*Repo, error) {
	if !ValidRepository(repository) {
		return nil, Permanent(fmt.Errorf("repository %q: %w (lower-case letters, digits and separators)", clip(repository), ErrInvalidReference))
	}
	key := registry + "/" + repository
	if push {
		key += "\x00push"
	}
	c.mu.Lock()
	if r, ok := c.repos[key]; ok {
		c.mu.Unlock()
		return r, nil
	}
	c.mu.Unlock()
	access, err := c.kc.Resolve(ctx, registry, repository)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s/%s: %w", registry, repository, err)
	}
	h, err := c.host(registry, access.Insecure, access.TLS)
	if err != nil {
		return nil, err
	}
	r := &Repo{c: c, h: h, Registry: registry, Name: repository, Access: access, push: push}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.repos[key]; ok {
		return prev, nil
	}
	c.repos[key] = r
	return r, nil
}

// tlsHint says what to do about a certificate the client does not trust.
func tlsHint(err error, host string) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &unknown) || strings.Contains(err.Error(), "certificate signed by unknown authority"):
		return fmt.Sprintf(" (the registry's TLS certificate is signed by an unknown authority: put its CA in /etc/docker/certs.d/%s/ca.crt or ~/.docker/certs.d/%s/ca.crt, give --ca-file, or mark the auth entry insecure: true)", host, host)
	case errors.As(err, &hostErr):
		return " (the registry's TLS certificate does not name this host)"
	case errors.As(err, &invalid):
		return " (the registry's TLS certificate is not valid)"
	}
	return ""
}
