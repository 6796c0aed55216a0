// Package dockerhub is the one table of Docker Hub's names: the registry
// name references use (docker.io), the host its API answers at
// (index.docker.io), the other host names that mean it, and the library/
// namespace of its official images. Rules, auth files, docker's config.json,
// the keychain, the per-host limits of a config file and the images a
// cluster runs all read it here, so they agree on what "Docker Hub" is.
// A leaf: it imports nothing of imagesync.
package dockerhub

import "strings"

const (
	// Registry is the canonical name of Docker Hub in references and keys.
	Registry = "docker.io"
	// Host is the host Docker Hub's registry API is reached at (as
	// go-containerregistry's name.Registry.RegistryStr says for docker.io).
	Host = "index.docker.io"
	// Library is the namespace of Docker Hub's official images: "nginx" is
	// "library/nginx".
	Library = "library"
)

// Aliases are the other host names that mean Docker Hub: its API host, the
// host its registry endpoint answers at, and the web site's registry name
// (docker login and docker's config.json use the latter too).
var Aliases = []string{Host, "registry-1.docker.io", "registry.hub.docker.com"}

// Canonical returns a registry host in lower case, with Docker Hub's aliases
// mapped to Registry. Anything else comes back lower-cased and otherwise as
// it is.
func Canonical(registry string) string {
	r := strings.ToLower(registry)
	for _, a := range Aliases {
		if r == a {
			return Registry
		}
	}
	return r
}

// Is reports whether a registry host is Docker Hub under any of its names.
func Is(registry string) bool { return Canonical(registry) == Registry }

// Repository returns the repository path as Docker Hub names it: a path of
// one component is an official image under library/. For any other
// registry the path is returned unchanged.
func Repository(registry, repository string) string {
	if Is(registry) && repository != "" && !strings.Contains(repository, "/") {
		return Library + "/" + repository
	}
	return repository
}

// APIHost returns the host a registry's API is reached at: Host for Docker
// Hub under any name, the lower-cased registry otherwise. Per-host settings
// (request limits) are keyed by it, as the registry client keys its hosts.
func APIHost(registry string) string {
	if Is(registry) {
		return Host
	}
	return strings.ToLower(registry)
}

// ConfigKey is the key docker login writes Docker Hub's credentials under
// in docker's config.json (and asks credential helpers for).
const ConfigKey = "https://" + Host + "/v1/"
