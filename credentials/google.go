package credentials

import (
	"encoding/base64"
	"net"
	"strings"
)

// googleBasicAuth maps image-syncer's Google service-account credentials to
// the basic-auth forms that gcr.io's and Artifact Registry's (*.pkg.dev)
// own token servers take. image-syncer reads username "_oauth2_" with the
// base64 of a JSON key and exchanges it with Google's OAuth server itself;
// the registry's token server takes the same key as "_json_key_base64"
// (or, when the password is the JSON text itself, "_json_key"), so no other
// server is involved. Every other username and registry is left alone:
// "_json_key", "_json_key_base64" and "oauth2accesstoken" are already basic
// auth for those registries.
func googleBasicAuth(registry, username, password string) (string, string) {
	if username != "_oauth2_" || !isGoogleRegistry(registry) {
		return username, password
	}
	if strings.HasPrefix(strings.TrimSpace(password), "{") {
		return "_json_key", password
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(password)); err == nil {
		return "_json_key_base64", strings.TrimSpace(password)
	}
	return username, password // not a key: let the registry say no
}

// isGoogleRegistry reports whether registry is gcr.io, a regional gcr.io
// host or an Artifact Registry host (REGION-docker.pkg.dev).
func isGoogleRegistry(registry string) bool {
	host := strings.ToLower(registry)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host == "gcr.io" || strings.HasSuffix(host, ".gcr.io") || strings.HasSuffix(host, ".pkg.dev")
}
