// Command demoseed fills a local registry with a few images for `make demo`
// (seed) and prints what a registry holds, with digests (list). It is a demo
// helper, not part of imagesync.
//
//	go run ./examples/demoseed seed 127.0.0.1:5001
//	go run ./examples/demoseed list 127.0.0.1:5002 library/alpine mirror/multi
package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: demoseed seed HOST | demoseed list HOST REPO...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "seed":
		err = seed(os.Args[2])
	case "list":
		err = list(os.Args[2], os.Args[3:])
	default:
		err = fmt.Errorf("unknown verb %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demoseed:", err)
		os.Exit(1)
	}
}

func seed(host string) error {
	for _, tag := range []string{"3.19", "3.20"} {
		img, err := random.Image(64<<10, 2)
		if err != nil {
			return err
		}
		if err := write(host+"/library/alpine:"+tag, img); err != nil {
			return err
		}
	}
	// A multi-arch OCI index, like most images on Docker Hub.
	var adds []mutate.IndexAddendum
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "arm", Variant: "v7"}} {
		img, err := random.Image(128<<10, 2)
		if err != nil {
			return err
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	ref, err := name.ParseReference(host + "/library/multi:1.0")
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		return err
	}
	d, _ := idx.Digest()
	fmt.Printf("seeded %s@%s (3 platforms)\n", ref, d)
	return nil
}

func write(s string, img v1.Image) error {
	ref, err := name.ParseReference(s)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img); err != nil {
		return err
	}
	d, _ := img.Digest()
	fmt.Printf("seeded %s@%s\n", ref, d)
	return nil
}

func list(host string, repos []string) error {
	for _, r := range repos {
		repo, err := name.NewRepository(host + "/" + r)
		if err != nil {
			return err
		}
		tags, err := remote.List(repo)
		if err != nil {
			return fmt.Errorf("%s: %w", repo, err)
		}
		sort.Strings(tags)
		for _, t := range tags {
			desc, err := remote.Head(repo.Tag(t))
			if err != nil {
				return err
			}
			fmt.Printf("%-45s %s  %s\n", repo.Tag(t).String(), desc.Digest, desc.MediaType)
		}
	}
	return nil
}
