package main

import (
	"fmt"
	"strings"

	"github.com/imagesync/imagesync/sync/rules"
)

// oneOffRefs reads the one-off SRC DST… arguments as users of other tools
// type them: skopeo's (and image-syncer users') docker:// prefix is
// dropped; a URL is refused with what to do instead; a destination that is
// only a registry host keeps the source's repository path under it
// (`sync quay.io/org/app:1 127.0.0.1:5000` → 127.0.0.1:5000/org/app:1), as
// an empty destination with --registry does.
func oneOffRefs(refs []string) ([]string, error) {
	if len(refs) == 0 {
		return refs, nil
	}
	out := make([]string, len(refs))
	for i, r := range refs {
		lower := strings.ToLower(r)
		switch {
		case strings.HasPrefix(lower, "docker://"):
			r = r[len("docker://"):]
		case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
			return nil, fmt.Errorf("%q is a URL: give an image reference without the scheme (%s); imagesync uses plain HTTP only for loopback addresses and registries marked insecure: true in the auth or config file",
				r, r[strings.Index(r, "://")+3:])
		}
		out[i] = r
	}
	src, err := rules.ParseSource(out[0])
	if err != nil || rules.IsLayout(src.Registry) {
		return out, nil // the rule loader says what is wrong; layouts have their own bare registries
	}
	for i := 1; i < len(out); i++ {
		if host, ok := registryOnly(out[i]); ok {
			out[i] = host + "/" + src.Repository
		}
	}
	return out, nil
}

// registryOnly reports whether s is a registry host alone: no path, and a
// dot, a port or localhost (Docker's test for a registry component). As a
// repository it would be docker.io/library/<s>, where nobody can push.
func registryOnly(s string) (string, bool) {
	host := strings.ToLower(strings.TrimSpace(s))
	if host == "" || strings.ContainsAny(host, "/@") || rules.IsLayout(host) {
		return "", false
	}
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		return "", false
	}
	d, err := rules.ParseDestination(host + "/x")
	if err != nil || d.Registry != host {
		return "", false
	}
	return host, true
}

// oneOffInputs applies oneOffRefs to the arguments of sync, plan or verify.
func oneOffInputs(cli *CLI) error {
	for _, in := range []*Inputs{&cli.Sync.Inputs, &cli.Plan.Inputs, &cli.Verify.Inputs} {
		refs, err := oneOffRefs(in.Refs)
		if err != nil {
			return err
		}
		in.Refs = refs
	}
	return nil
}
