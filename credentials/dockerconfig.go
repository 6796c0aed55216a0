package credentials

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/docker/docker-credential-helpers/client"
	helpercreds "github.com/docker/docker-credential-helpers/credentials"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/imagesync/imagesync/registry/dockerhub"
)

// DockerConfig reads the credentials `docker login` stored: the `auths` of
// config.json, its credsStore and credHelpers (docker-credential-* programs
// on PATH), identity tokens, and Docker Hub's "https://index.docker.io/v1/"
// key for docker.io. Each registry is looked up once per run.
type DockerConfig struct {
	Dir     string     // the folder holding config.json
	Secrets *SecretSet // every secret found is added here, for redaction
	Warn    func(msg string)

	once    sync.Once
	cf      *configfile.ConfigFile
	loadErr error

	mu    sync.Mutex
	cache map[string]Access
}

// DockerConfigDir is the folder docker uses: $DOCKER_CONFIG, else ~/.docker.
func DockerConfigDir(lookup func(string) (string, bool), home string) string {
	if v, ok := lookup("DOCKER_CONFIG"); ok && v != "" {
		return v
	}
	return filepath.Join(home, ".docker")
}

func (d *DockerConfig) load() error {
	d.once.Do(func() {
		d.cf, d.loadErr = config.Load(d.Dir)
		if d.loadErr != nil {
			d.loadErr = fmt.Errorf("docker config %s: %w", filepath.Join(d.Dir, config.ConfigFileName), d.loadErr)
		}
	})
	return d.loadErr
}

// Check reads config.json now (once per run), so that a malformed file is
// one configuration error before anything runs rather than a failure of
// every job. A missing file is no error: there are no credentials in it.
func (d *DockerConfig) Check() error { return d.load() }

// Resolve implements Keychain.
func (d *DockerConfig) Resolve(_ context.Context, registry, _ string) (Access, error) {
	if err := d.load(); err != nil {
		return Access{}, err
	}
	registry = dockerhub.Canonical(registry)
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.cache[registry]; ok {
		return a, nil
	}
	if d.cache == nil {
		d.cache = map[string]Access{}
	}
	file := d.cf.Filename
	source := fmt.Sprintf("docker config %s", file)
	helper := d.helperFor(registry)
	if helper != "" {
		source = fmt.Sprintf("docker config %s (credential helper docker-credential-%s)", file, helper)
	}
	anonymous := Access{Auth: authn.Anonymous, Source: "anonymous access (nothing for " + registry + " in " + source + ")", ID: "anonymous"}
	ac, err := d.authConfig(registry, helper)
	if err != nil {
		// A missing or failing helper must not stop public pulls; the error
		// text of a helper can echo what it printed, so only its gist is kept.
		if d.Warn != nil {
			d.Warn(fmt.Sprintf("%s: no credentials for %s: %s; continuing anonymously", source, registry, helperGist(err)))
		}
		d.cache[registry] = anonymous
		return anonymous, nil
	}
	d.Secrets.Add(ac.Password, ac.IdentityToken, ac.RegistryToken, ac.Auth)
	d.Secrets.AddCredentials(ac.Username, ac.Password)
	if ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
		d.cache[registry] = anonymous
		return anonymous, nil
	}
	a := Access{
		Auth: authn.FromConfig(authn.AuthConfig{
			Username:      ac.Username,
			Password:      ac.Password,
			IdentityToken: ac.IdentityToken,
			RegistryToken: ac.RegistryToken,
		}),
		Source: source,
		ID:     "docker\x00" + file + "\x00" + registry,
	}
	d.cache[registry] = a
	return a, nil
}

// helperFor names the credential helper docker would run for registry.
func (d *DockerConfig) helperFor(registry string) string {
	key := registry
	if registry == dockerhub.Registry {
		key = dockerhub.ConfigKey
	}
	if h, ok := d.cf.CredentialHelpers[key]; ok {
		return h
	}
	if h, ok := d.cf.CredentialHelpers[registry]; ok {
		return h
	}
	return d.cf.CredentialsStore
}

// helperGist keeps the first clause of a credential-helper error: docker/cli
// appends the helper's output ("out: `…`"), which must never be printed.
func helperGist(err error) string {
	s := err.Error()
	if i := strings.Index(s, "out:"); i >= 0 {
		s = strings.TrimRight(s[:i], " ,-")
	}
	if i := strings.Index(s, "\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

// authConfig asks the credential helper (or the config file) for registry.
// A helper runs with its stderr captured and dropped: whatever it prints
// (it may echo a secret) never reaches the terminal.
func (d *DockerConfig) authConfig(registry, helper string) (types.AuthConfig, error) {
	key := registry
	if registry == dockerhub.Registry {
		key = dockerhub.ConfigKey
	}
	if helper == "" || os.Getenv("DOCKER_AUTH_CONFIG") != "" {
		return d.cf.GetAuthConfig(key)
	}
	var ac types.AuthConfig
	creds, err := client.Get(quietProgram("docker-credential-"+helper), key)
	if err != nil {
		if helpercreds.IsErrCredentialsNotFound(err) {
			return ac, nil
		}
		return ac, err
	}
	if creds.Username == "<token>" {
		ac.IdentityToken = creds.Secret
	} else {
		ac.Username, ac.Password = creds.Username, creds.Secret
	}
	ac.ServerAddress = key
	return ac, nil
}

// quietProgram runs a credential helper with its stderr kept from the
// terminal.
func quietProgram(name string) client.ProgramFunc {
	return func(args ...string) client.Program {
		cmd := exec.Command(name, args...)
		cmd.Stderr = io.Discard
		return &program{cmd: cmd}
	}
}

type program struct{ cmd *exec.Cmd }

func (p *program) Output() ([]byte, error) { return p.cmd.Output() }
func (p *program) Input(in io.Reader)      { p.cmd.Stdin = in }
