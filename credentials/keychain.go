package credentials

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/imagesync/imagesync/registry/dockerhub"
)

// Access is what a run may use for one repository.
type Access struct {
	Auth     authn.Authenticator
	Insecure bool   // plain HTTP or unverified TLS for this repository
	TLS      TLS    // extra trust and client certificate
	Source   string // where the credentials came from, for error messages: `auth file "a.json" entry "quay.io"`; never the secret
	// ID identifies the credentials (not their value) so a transport can be
	// shared by every repository that uses the same ones.
	ID string
}

// TLS names the files that shape a TLS connection to a registry.
type TLS struct {
	CAFiles  []string // PEM certificates trusted on top of the system's
	CertFile string   // client certificate (PEM), with KeyFile
	KeyFile  string
}

// ID is a stable identity of the settings, for keying connections.
func (t TLS) ID() string {
	return strings.Join(t.CAFiles, "|") + "\x00" + t.CertFile + "\x00" + t.KeyFile
}

// Keychain resolves the access for a repository. It is the one seam every
// credential source plugs into; the engine only ever asks it.
type Keychain interface {
	Resolve(ctx context.Context, registry, repository string) (Access, error)
}

// Chain looks a repository up in the auth files (first match wins, each
// file's longest prefix first) and falls back to docker's config.json (when
// set), then to anonymous access. An auth-file entry without
// username/password still decides `insecure` and TLS files but takes its
// credentials from the fallback. TLS trust also comes from docker's certs.d
// folders and --ca-file.
type Chain struct {
	Files    []*AuthFile
	Fallback Keychain // nil: anonymous
	CertDirs []string // docker-style certs.d folders: <dir>/<host[:port]>/{*.crt,*.cert,*.key}
	CAFiles  []string // --ca-file: trusted for every registry
	Secrets  *SecretSet
}

// AddFile adds an auth file and remembers its passwords for redaction.
func (c *Chain) AddFile(af *AuthFile) {
	c.Files = append(c.Files, af)
	if c.Secrets == nil {
		c.Secrets = &SecretSet{}
	}
	for _, e := range af.Entries {
		c.Secrets.AddCredentials(e.Username, e.Password)
	}
}

// HostTLS returns the TLS settings of a bare host, for a request to a host
// that is not the registry being used (a token realm, a storage redirect):
// --ca-file, the host's certs.d folder, and an auth-file entry for exactly
// that host (its ca, cert, key and insecure). Nothing is inherited from the
// registry that sent the request there.
func (c *Chain) HostTLS(host string) (TLS, bool) {
	host = dockerhub.Canonical(host)
	tls := c.certsFor(host)
	for _, f := range c.Files {
		for _, e := range f.Entries {
			if e.Key != host {
				continue
			}
			if e.CA != "" {
				tls.CAFiles = append(tls.CAFiles, e.CA)
			}
			if e.Cert != "" {
				tls.CertFile, tls.KeyFile = e.Cert, e.KeyFile
			}
			return tls, e.Insecure
		}
	}
	return tls, false
}

// DefaultCertDirs are docker's certs.d folders: the system's and the user's.
func DefaultCertDirs(home string) []string {
	var dirs []string
	switch runtime.GOOS {
	case "windows":
		if pd := os.Getenv("ProgramData"); pd != "" {
			dirs = append(dirs, filepath.Join(pd, "docker", "certs.d"))
		}
	default:
		dirs = append(dirs, "/etc/docker/certs.d")
	}
	if home != "" {
		dirs = append(dirs, filepath.Join(home, ".docker", "certs.d"))
	}
	return dirs
}

// Resolve implements Keychain.
func (c *Chain) Resolve(ctx context.Context, registry, repository string) (Access, error) {
	registry = dockerhub.Canonical(registry)
	tls := c.certsFor(registry)
	var insecure bool
	for _, f := range c.Files {
		e, ok := f.Match(registry, repository)
		if !ok {
			continue
		}
		insecure = e.Insecure
		if e.CA != "" {
			tls.CAFiles = append(tls.CAFiles, e.CA)
		}
		if e.Cert != "" {
			tls.CertFile, tls.KeyFile = e.Cert, e.KeyFile
		}
		if e.HasCredentials() {
			user, pass := googleBasicAuth(registry, e.Username, e.Password)
			return Access{
				Auth:     authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}),
				Insecure: insecure,
				TLS:      tls,
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
		a.TLS = tls
		return a, nil
	}
	return Access{Auth: authn.Anonymous, Insecure: insecure, TLS: tls, Source: "anonymous access", ID: "anonymous"}, nil
}

// certsFor collects --ca-file and the certs.d files of a registry host.
func (c *Chain) certsFor(registry string) TLS {
	t := TLS{CAFiles: append([]string(nil), c.CAFiles...)}
	for _, dir := range c.CertDirs {
		entries, err := os.ReadDir(filepath.Join(dir, registry))
		if err != nil {
			continue
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, n := range names {
			p := filepath.Join(dir, registry, n)
			switch {
			case strings.HasSuffix(n, ".crt"):
				t.CAFiles = append(t.CAFiles, p)
			case strings.HasSuffix(n, ".cert"):
				key := strings.TrimSuffix(p, ".cert") + ".key"
				if _, err := os.Stat(key); err == nil {
					t.CertFile, t.KeyFile = p, key
				}
			}
		}
	}
	return t
}
