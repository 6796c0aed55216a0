package rules

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestParseLayoutForms(t *testing.T) {
	dg := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct {
		in                   string
		reg, repo, tag, dgst string
		kind                 SelectorKind
		err                  string
	}{
		{in: "oci:./bundle", reg: "oci:bundle", kind: AllImages},
		{in: "oci:/srv/bundle/", reg: "oci:/srv/bundle", kind: AllImages},
		{in: "oci-archive:bundle.tar", reg: "oci-archive:bundle.tar", kind: AllImages},
		{in: "oci:./bundle:docker.io/library/nginx:1.27", reg: "oci:bundle", repo: "docker.io/library/nginx", tag: "1.27", kind: TagList},
		{in: "oci:bundle:nginx:1.27", reg: "oci:bundle", repo: "docker.io/library/nginx", tag: "1.27", kind: TagList},
		{in: "oci:bundle:127.0.0.1:5000/a/b:v1", reg: "oci:bundle", repo: "127.0.0.1:5000/a/b", tag: "v1", kind: TagList},
		{in: "oci-archive:b.tar:quay.io/a/b@" + dg, reg: "oci-archive:b.tar", repo: "quay.io/a/b", dgst: dg, kind: DigestRef},
		{in: "oci:bundle:latest", reg: "oci:bundle", tag: "latest", kind: TagList},
		{in: `oci:C:\bundle`, reg: `oci:C:\bundle`, kind: AllImages},
		{in: `oci:C:\bundle:x.io/a/b:1`, reg: `oci:C:\bundle`, repo: "x.io/a/b", tag: "1", kind: TagList},
		{in: "oci:", err: "needs a path"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			s, err := ParseSource(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.reg
			tag := ""
			if len(s.Tags) == 1 {
				tag = s.Tags[0]
			}
			if s.Registry != want || s.Repository != tc.repo || tag != tc.tag || s.Digest != tc.dgst || s.Kind != tc.kind {
				t.Fatalf("got %+v", s)
			}
		})
	}
}

func TestParseLayoutDestination(t *testing.T) {
	d, err := ParseDestination("oci:./out/")
	if err != nil || d.Registry != "oci:out" || d.Repository != "" || d.Raw != "oci:./out/" {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := ParseDestination("oci:out:x.io/a/b:1"); err == nil || !strings.Contains(err.Error(), "takes no image name") {
		t.Fatalf("named layout destination: %v", err)
	}
}

func TestExpandLayouts(t *testing.T) {
	dg := "sha256:" + strings.Repeat("b", 64)
	load := func(t *testing.T, yaml string) []Rule {
		t.Helper()
		p := t.TempDir() + "/images.yaml"
		if err := writeString(p, yaml); err != nil {
			t.Fatal(err)
		}
		rs, err := LoadFile(p, Options{LookupEnv: func(string) (string, bool) { return "", false }})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	for _, tc := range []struct {
		name   string
		yaml   string
		listed []string
		want   []string // "source → destination"
	}{
		{
			name:   "registry into a layout keeps the full name",
			yaml:   "quay.io/coreos/etcd:/^v3/: [oci:bundle, oci-archive:b.tar]\nnginx@" + dg + ": oci:bundle\n",
			listed: []string{"v3.5.0", "v2", "v3.5.1"},
			want: []string{
				"quay.io/coreos/etcd:v3.5.0 → oci:bundle:quay.io/coreos/etcd:v3.5.0",
				"quay.io/coreos/etcd:v3.5.0 → oci-archive:b.tar:quay.io/coreos/etcd:v3.5.0",
				"quay.io/coreos/etcd:v3.5.1 → oci:bundle:quay.io/coreos/etcd:v3.5.1",
				"quay.io/coreos/etcd:v3.5.1 → oci-archive:b.tar:quay.io/coreos/etcd:v3.5.1",
				"docker.io/library/nginx@" + dg + " → oci:bundle:docker.io/library/nginx",
			},
		},
		{
			name:   "every image of a layout below the destination, paths kept",
			yaml:   "oci:bundle: [registry.internal/mirror, oci:copy]\n",
			listed: []string{"docker.io/library/nginx:1.27", "quay.io/a/b@" + dg, "latest", "127.0.0.1:5000/x/y:2"},
			want: []string{
				"oci:bundle:docker.io/library/nginx:1.27 → registry.internal/mirror/library/nginx:1.27",
				"oci:bundle:docker.io/library/nginx:1.27 → oci:copy:docker.io/library/nginx:1.27",
				"oci:bundle:quay.io/a/b@" + dg + " → registry.internal/mirror/a/b",
				"oci:bundle:quay.io/a/b@" + dg + " → oci:copy:quay.io/a/b",
				"oci:bundle:latest → registry.internal/mirror:latest",
				"oci:bundle:latest → oci:copy:latest",
				"oci:bundle:127.0.0.1:5000/x/y:2 → registry.internal/mirror/x/y:2",
				"oci:bundle:127.0.0.1:5000/x/y:2 → oci:copy:127.0.0.1:5000/x/y:2",
			},
		},
		{
			name:   "a registry alone takes the paths right below it",
			yaml:   "oci:bundle: registry.internal:5000\n",
			listed: []string{"docker.io/library/nginx:1.27"},
			want:   []string{"oci:bundle:docker.io/library/nginx:1.27 → registry.internal:5000/library/nginx:1.27"},
		},
		{
			name: "one image of a layout",
			yaml: "oci-archive:b.tar:docker.io/library/nginx:1.27: registry.internal/mirror\n",
			want: []string{"oci-archive:b.tar:docker.io/library/nginx:1.27 → registry.internal/mirror/library/nginx:1.27"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range load(t, tc.yaml) {
				var listed []string
				if r.NeedsTagList() {
					listed = tc.listed
				}
				jobs, err := r.Expand(listed)
				if err != nil {
					t.Fatal(err)
				}
				for _, j := range jobs {
					got = append(got, j.Source.String()+" → "+j.Destination.String())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestLayoutBareTagNeedsARepository(t *testing.T) {
	p := t.TempDir() + "/images.yaml"
	_ = writeString(p, "oci:bundle: registry.internal\n")
	rs, err := LoadFile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rs[0].Expand([]string{"latest"})
	if err == nil || !strings.Contains(err.Error(), `bare tag "latest"`) || !strings.Contains(err.Error(), "images.yaml:1") {
		t.Fatalf("%v", err)
	}
}

func TestLayoutRuleErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"oci:bundle: registry.internal/mirror:latest\n", "keep their names below the destination repository"},
		{"oci:bundle: \"\"\n", "an empty destination cannot take images out of a layout"},
		{"nginx:1: oci:bundle:x.io/a:1\n", "takes no image name"},
	} {
		p := t.TempDir() + "/images.yaml"
		_ = writeString(p, tc.yaml)
		_, err := LoadFile(p, Options{DefaultRegistry: "r.io", DefaultNamespace: "ns"})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "images.yaml:1") {
			t.Errorf("%q: %v, want an error at images.yaml:1 saying %q", tc.yaml, err, tc.want)
		}
	}
}

func writeString(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }

// Tag filters select among a layout's images, repository by repository;
// images named by digest pass.
func TestLayoutTagFilter(t *testing.T) {
	dg := "sha256:" + strings.Repeat("c", 64)
	r := layoutRule(t)
	r.Tags = &TagFilter{Exclude: []*regexp.Regexp{regexp.MustCompile(`-alpine$`)}, Latest: 1}
	jobs, err := r.Expand([]string{"x.io/a:1.0", "x.io/a:1.1", "x.io/a:1.2-alpine", "x.io/b:2.0", "x.io/b:1.0", "x.io/c@" + dg})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.Destination.String())
	}
	want := []string{"r.io/m/a:1.1", "r.io/m/b:2.0", "r.io/m/c"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v, want %v", got, want)
	}
	var removed []string
	for _, s := range r.Steps {
		removed = append(removed, s.Filter+"="+strings.Join(s.Removed, ","))
	}
	if strings.Join(removed, " ") != "exclude=x.io/a:1.2-alpine latest=x.io/a:1.0,x.io/b:1.0" {
		t.Fatalf("steps %v", removed)
	}
}

// With referrers on, a layout's cosign and referrers-tag-schema names
// (x.io/a:sha256-<hex>.sig) are not images of their own: they travel with
// their subject, as from a registry. Without, they are copied as tags.
func TestLayoutReferrerTags(t *testing.T) {
	hex := strings.Repeat("d", 64)
	listed := []string{"x.io/a:1.0", "x.io/a:sha256-" + hex + ".sig", "x.io/a:sha256-" + hex, "x.io/b:sha256-" + hex + ".att", "x.io/b:2.0"}
	for _, tc := range []struct {
		name      string
		referrers *Referrers
		want      string
		steps     string
	}{
		{"referrers", &Referrers{}, "r.io/m/a:1.0 r.io/m/b:2.0", "referrers=x.io/a:sha256-" + hex + ".sig,x.io/a:sha256-" + hex + ",x.io/b:sha256-" + hex + ".att"},
		{"no referrers", nil, "r.io/m/a:1.0 r.io/m/a:sha256-" + hex + ".sig r.io/m/a:sha256-" + hex + " r.io/m/b:sha256-" + hex + ".att r.io/m/b:2.0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := layoutRule(t)
			r.Referrers = tc.referrers
			jobs, err := r.Expand(listed)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range jobs {
				got = append(got, j.Destination.String())
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got %v, want %s", got, tc.want)
			}
			var steps []string
			for _, s := range r.Steps {
				steps = append(steps, s.Filter+"="+strings.Join(s.Removed, ","))
			}
			if strings.Join(steps, " ") != tc.steps {
				t.Errorf("steps %v, want %s", steps, tc.steps)
			}
		})
	}
}

// layoutRule loads the rule "oci:bundle: r.io/m" (every image of a layout).
func layoutRule(t *testing.T) *Rule {
	t.Helper()
	p := t.TempDir() + "/images.yaml"
	_ = writeString(p, "oci:bundle: r.io/m\n")
	rs, err := LoadFile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &rs[0]
}
