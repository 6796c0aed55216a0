package rules

import (
	"reflect"
	"strings"
	"testing"
)

func TestWildcardSources(t *testing.T) {
	names := []string{"ns1/a", "ns1/b", "ns1/deep/c", "ns2/a", "top", "ns10/x"}
	for _, tc := range []struct {
		src, dst string
		want     []string // source repo → destination repo
		err      string
	}{
		{src: "reg.example.com/ns1/*", dst: "m.example.com/mirror", want: []string{"ns1/a=mirror/a", "ns1/b=mirror/b"}},
		{src: "reg.example.com/ns1/**", dst: "m.example.com/mirror", want: []string{"ns1/a=mirror/a", "ns1/b=mirror/b", "ns1/deep/c=mirror/deep/c"}},
		{src: "reg.example.com/**", dst: "m.example.com/all", want: []string{"ns1/a=all/ns1/a", "ns1/b=all/ns1/b", "ns1/deep/c=all/ns1/deep/c", "ns2/a=all/ns2/a", "top=all/top", "ns10/x=all/ns10/x"}},
		{src: "reg.example.com/*", dst: "m.example.com", want: []string{"top=top"}},
		{src: "reg.example.com/ns1*/*:v1", dst: "m.example.com/p", want: []string{"ns1/a=p/ns1/a", "ns1/b=p/ns1/b", "ns10/x=p/ns10/x"}},
		{src: "reg.example.com/ns1/*:/^v/", dst: "m.example.com/p", want: []string{"ns1/a=p/a", "ns1/b=p/b"}},
		{src: "ns1/*", dst: "m.example.com/p", err: "needs the registry named first"},
		{src: "reg.example.com/ns1/*@sha256:" + strings.Repeat("a", 64), dst: "m.example.com/p", err: "a digest names one image"},
		{src: "reg.example.com/NS/*", dst: "m.example.com/p", err: "lowercase"},
		{src: "reg.example.com/ns/a+*", dst: "m.example.com/p", err: "not allowed"},
		{src: "reg.example.com/ns1/*", dst: "m.example.com/p:v1", err: "keeps each repository's tags"},
		{src: "reg.example.com/ns1/*", dst: "oci:/tmp/x", err: "not to an image layout"},
		{src: "reg.example.com/ns1/*", dst: "", err: "needs a destination"},
	} {
		t.Run(tc.src+"→"+tc.dst, func(t *testing.T) {
			r, err := OneOff(tc.src, []string{tc.dst}, Options{DefaultRegistry: "d.example.com"})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !r.IsDiscovery() {
				t.Fatal("not a discovery rule")
			}
			rs, err := r.ForRepositories(names)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range rs {
				if c.IsDiscovery() || c.Source.Kind != r.Source.Kind || c.Destinations[0].Registry != "m.example.com" {
					t.Errorf("rule %+v", c)
				}
				got = append(got, c.Source.Repository+"="+c.Destinations[0].Repository)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRepositoriesIncludeExclude(t *testing.T) {
	r, err := OneOff("reg.example.com/**", []string{"m.example.com/x"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sel := r.Source.Repos
	if err := sel.SetRepositories([]string{"ns1/*", "ns2/a"}, []string{"ns1/b"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range []string{"ns1/a", "ns1/b", "ns2/a", "ns2/b", "ns3/a"} {
		if sel.Selects(n) {
			got = append(got, n)
		}
	}
	if want := []string{"ns1/a", "ns2/a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("selected %v, want %v", got, want)
	}
	if _, ok := sel.Literal(); ok {
		t.Error("a pattern include is not literal")
	}
	if err := sel.SetRepositories([]string{"ns1/a", "ns2/b"}, []string{"ns2/b"}); err != nil {
		t.Fatal(err)
	}
	if lit, ok := sel.Literal(); !ok || !reflect.DeepEqual(lit, []string{"ns1/a"}) {
		t.Errorf("literal %v %v", lit, ok)
	}
	r, _ = OneOff("reg.example.com/ns1/*", []string{"m.example.com/x"}, Options{})
	if err := r.Source.Repos.SetRepositories([]string{"ns2/a"}, nil); err == nil || !strings.Contains(err.Error(), "not below") {
		t.Errorf("error %v", err)
	}
}
