package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

func TestParseFilterAndMatch(t *testing.T) {
	f, err := ParseFilter([]string{"linux", "windows:10.0.17763"}, []string{"amd64,arm:v7", " arm64 "})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    *Platform
		want bool
	}{
		{&Platform{OS: "linux", Arch: "amd64"}, true},
		{&Platform{OS: "linux", Arch: "arm64", Variant: "v8"}, true},
		{&Platform{OS: "linux", Arch: "arm", Variant: "v7"}, true},
		{&Platform{OS: "linux", Arch: "arm", Variant: "v6"}, false},
		{&Platform{OS: "windows", Arch: "amd64", OSVersion: "10.0.17763"}, true},
		{&Platform{OS: "windows", Arch: "amd64", OSVersion: "10.0.20348"}, false},
		{&Platform{OS: "darwin", Arch: "amd64"}, false},
		{&Platform{OS: "unknown", Arch: "unknown"}, false},
		{nil, false},
	} {
		if got := f.Match(tc.p); got != tc.want {
			t.Errorf("Match(%+v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if !(Filter{}).Match(nil) {
		t.Error("an empty filter keeps everything")
	}
	if _, err := ParseFilter(nil, []string{":v7"}); err == nil || !strings.Contains(err.Error(), "--arch") {
		t.Errorf("want an --arch error, got %v", err)
	}
}

// A nested index is filtered too; an untouched index keeps its bytes.
func TestFilterNestedIndex(t *testing.T) {
	host, _ := memRegistry(t)
	child := func(arch string) mutate.IndexAddendum {
		img, _ := random.Image(64, 1)
		return mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}}
	}
	inner := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), child("arm64"), child("s390x"))
	outer := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), child("amd64"), mutate.IndexAddendum{Add: inner})
	if err := remote.WriteIndex(mustRef(t, host+"/ns/nested:v1"), outer); err != nil {
		t.Fatal(err)
	}
	c := newEngine(t, Options{}).c
	src, err := c.Repo(context.Background(), host, "ns/nested", false)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := outer.RawManifest()

	made := map[string]manifestBytes{}
	f, _ := ParseFilter(nil, []string{"amd64", "arm64"})
	out, kept, err := filterIndex(context.Background(), src, raw, f, made)
	if err != nil || kept != 2 || len(made) != 1 {
		t.Fatalf("kept %d, made %d, err %v", kept, len(made), err)
	}
	var top struct{ Manifests []oci.Entry }
	_ = json.Unmarshal(out, &top)
	if len(top.Manifests) != 2 {
		t.Fatalf("outer has %d children", len(top.Manifests))
	}
	nested, ok := made[top.Manifests[1].Digest]
	if !ok || int64(len(nested.raw)) != top.Manifests[1].Size {
		t.Fatalf("rewritten nested index not recorded under its new digest and size")
	}
	var in struct{ Manifests []oci.Entry }
	_ = json.Unmarshal(nested.raw, &in)
	if len(in.Manifests) != 1 || in.Manifests[0].Platform.Arch != "arm64" {
		t.Fatalf("nested index children: %+v", in.Manifests)
	}

	// End to end: the destination gets the rewritten nested index.
	dst, _ := memRegistry(t)
	e := newEngine(t, Options{Filter: f})
	jobs, _, err := e.Expand(context.Background(), []rules.Rule{ruleFor(t, host+"/ns/nested:v1", dst+"/ns/nested")})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.Sync(context.Background(), jobs, nil); res.Summary.Copied != 1 || res.Jobs[0].Digest != client.Digest(out) {
		t.Fatalf("%+v %v", res.Summary, res.Jobs[0].Err)
	}
	got, err := remote.Index(mustRef(t, dst+"/ns/nested@"+top.Manifests[1].Digest))
	if err != nil {
		t.Fatalf("nested index missing at the destination: %v", err)
	}
	if gotRaw, _ := got.RawManifest(); string(gotRaw) != string(nested.raw) {
		t.Fatal("nested index bytes differ")
	}

	all, _ := ParseFilter([]string{"linux"}, nil)
	out, kept, err = filterIndex(context.Background(), src, raw, all, map[string]manifestBytes{})
	if err != nil || kept != 3 || string(out) != string(raw) {
		t.Fatalf("a filter that removes nothing must keep the bytes (kept %d, err %v)", kept, err)
	}
	none, _ := ParseFilter([]string{"windows"}, nil)
	if _, kept, err = filterIndex(context.Background(), src, raw, none, map[string]manifestBytes{}); kept != 0 || err != nil {
		t.Fatalf("kept %d, err %v", kept, err)
	}
}
