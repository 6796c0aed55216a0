package credentials

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Access is what a run may use for one repository.
type Access struct {
	Auth     authn.Authenticator
	Insecure bool   // plain HTTP or unverified TLS for this repository
	Source   string // where the credentials came from, for error messages: `auth file "a.json" entry "quay.io"`; never the secret
	// ID identifies the credentials (not their value) so a transport can be
	// shared by every repository that uses the same ones.
	ID string
}

// Keychain resolves the access for a repository. It is the one seam every
// credential source plugs into; the engine only ever asks it.
type Keychain interface {
	Resolve(ctx context.Context, registry, repository string) (Access, error)
}

// Secrets is implemented by keychains that know secret values, so that
// output can be scrubbed of them as a last line of defence.
type Secrets interface {
	Secrets() []string
}

// Chain looks a repository up in the auth files (first match wins, each
// file's longest prefix first) and falls back to the next source, then to
// anonymous access. An auth-file entry without username/password still
// decides `insecure` but takes its credentials from the fallback.
type Chain struct {
	Files    []*AuthFile
	Fallback Keychain // nil: anonymous
}

// Resolve implements Keychain.
func (c *Chain) Resolve(ctx context.Context, registry, repository string) (Access, error) {
	registry = NormalizeRegistry(registry)
	var insecure bool
	for _, f := range c.Files {
		e, ok := f.Match(registry, repository)
		if !ok {
			continue
		}
		insecure = e.Insecure
		if e.HasCredentials() {
			return Access{
				Auth:     authn.FromConfig(authn.AuthConfig{Username: e.Username, Password: e.Password}),
				Insecure: insecure,
				Source:   fmt.Sprintf("auth file %q entry %q", f.File, e.Raw),
				ID:       f.File + "\x00" + e.Key,
			}, nil
		}
		break
	}
	if c.Fallback != nil {
		a, err := c.Fallback.Resolve(ctx, registry, repository)
		if err != nil {
			return Access{}, err
		}
		a.Insecure = a.Insecure || insecure
		return a, nil
	}
	return Access{Auth: authn.Anonymous, Insecure: insecure, Source: "anonymous access", ID: "anonymous"}, nil
}

// Secrets implements Secrets.
func (c *Chain) Secrets() []string {
	var out []string
	for _, f := range c.Files {
		out = append(out, f.Secrets()...)
	}
	if s, ok := c.Fallback.(Secrets); ok {
		out = append(out, s.Secrets()...)
	}
	return out
}
