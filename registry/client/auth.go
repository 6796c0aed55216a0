package client

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/imagesync/imagesync/credentials"
)

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
