// Package client is imagesync's registry client: one place owns each
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
package client

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
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
	observer  Observer // nil: none

	secrets *credentials.SecretSet // tokens learnt are added for redaction

	tlsMu      sync.Mutex
	transports map[string]http.RoundTripper // retrying, per TLS settings (insecure × files)
	others     map[string]http.RoundTripper // per host reached besides the registries (realms, redirects)

	hostPolicy HostPolicy
	timeout    time.Duration
	limits     *hostTable // per URL host: concurrency, rate, quota
	warm       atomic.Int64

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
