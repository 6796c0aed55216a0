package rules

import (
	"regexp"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/registry/dockerhub"
)

// Seeds shared by the reference fuzzers: every source and destination form
// image-syncer files use, plus edge cases of the grammar.
var fuzzRefSeeds = []string{
	"nginx",
	"nginx:1.27",
	"library/nginx:1.27-alpine",
	"docker.io/library/nginx",
	"index.docker.io/library/redis:7",
	"registry-1.docker.io/bitnami/redis:7.2,7.4",
	"quay.io/coreos/etcd:v3.5.0",
	"quay.io/coreos/etcd:/^v3\\.5\\./",
	"quay.io/coreos/etcd:/v3\\.(4|5)\\.[0-9]+$/",
	"gcr.io/google-containers/pause:/^3\\.[0-9]$/",
	"quay.io/a/b:v1, v2 ,v3",
	"quay.io/a/d@sha256:" + strings.Repeat("a", 64),
	"quay.io/a/d@sha512:" + strings.Repeat("c", 128),
	"quay.io/a/d:v1@sha256:" + strings.Repeat("a", 64),
	"127.0.0.1:5000/mirror/alpine:3.20",
	"localhost:5000/a/b",
	"localhost/a/b:latest",
	"[::1]:5000/ns/app:1",
	"harbor.example.com:8443/project/sub/app:1.0.0_rc-1",
	"Docker.IO/x/y",
	"REG/x/y",
	"registry.cn-hangzhou.aliyuncs.com/acs/sample-app:$TAG",
	"${REGISTRY}/ns/app",
	"quay.io/Upper/case",
	"quay.io/a//b",
	"quay.io/a/b:",
	"quay.io/a/b:/unterminated",
	"quay.io/a/b:/(/",
	"quay.io/a/b@sha256:short",
	"  quay.io/a/b:t  ",
	"a/b/c/d/e/f:" + strings.Repeat("t", 128),
	"x.io/" + strings.Repeat("a", 251),
	"",
	"oci:./bundle",
	"oci:/abs/bundle:docker.io/library/nginx:1.27",
	"oci-archive:bundle.tar:quay.io/a/d@sha256:" + strings.Repeat("a", 64),
	"oci:C:\\bundle:latest",
	"oci:",
}

// validLayout checks a source or destination that names an image layout.
func validLayout(t *testing.T, what, reg, repo string) {
	t.Helper()
	path, _, ok := LayoutLocation(reg)
	if !ok || path == "" {
		t.Fatalf("%s: layout %q without a path", what, reg)
	}
	if repo != "" {
		host, path, _ := strings.Cut(repo, "/")
		validRepository(t, what, host, path)
	}
}

func validRepository(t *testing.T, what, reg, repo string) {
	t.Helper()
	if reg == "" || repo == "" {
		t.Fatalf("%s: empty registry %q or repository %q", what, reg, repo)
	}
	if reg != strings.ToLower(reg) || !domainRE.MatchString(reg) {
		t.Fatalf("%s: registry %q is not a lowercase host[:port]", what, reg)
	}
	if reg != DockerHub && dockerhub.Is(reg) {
		t.Fatalf("%s: Docker Hub alias %q not normalised", what, reg)
	}
	if repo != strings.ToLower(repo) {
		t.Fatalf("%s: repository %q is not lowercase", what, repo)
	}
	for _, c := range strings.Split(repo, "/") {
		if !pathComponentRE.MatchString(c) {
			t.Fatalf("%s: repository %q has the invalid component %q", what, repo, c)
		}
	}
	if reg == DockerHub && !strings.Contains(repo, "/") {
		t.Fatalf("%s: Docker Hub repository %q lacks its namespace", what, repo)
	}
	if len(reg)+1+len(repo) > maxNameLen {
		t.Fatalf("%s: name %s/%s longer than %d", what, reg, repo, maxNameLen)
	}
}

// tagGrammar is the distribution spec's tag grammar, written as its
// regular expression: the oracle for oci.ValidTag, which parsing uses.
var tagGrammar = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

func validTags(t *testing.T, what string, tags []string) {
	t.Helper()
	for _, tag := range tags {
		if !tagGrammar.MatchString(tag) {
			t.Fatalf("%s: invalid tag %q", what, tag)
		}
	}
}

// fuzzRefs fuzzes check with the reference seeds.
func fuzzRefs(f *testing.F, check func(t *testing.T, in string)) {
	for _, s := range fuzzRefSeeds {
		f.Add(s)
	}
	f.Fuzz(check)
}

func FuzzParseSource(f *testing.F) {
	fuzzRefs(f, func(t *testing.T, in string) {
		s, err := ParseSource(in)
		if err != nil {
			return
		}
		if IsLayout(s.Registry) {
			validLayout(t, in, s.Registry, s.Repository)
			return
		}
		validRepository(t, in, s.Registry, s.Repository)
		switch s.Kind {
		case AllTags:
			if s.Tags != nil || s.Regex != nil || s.Digest != "" {
				t.Fatalf("%q: all-tags source with a selector: %+v", in, s)
			}
		case TagList:
			if len(s.Tags) == 0 || s.Regex != nil || s.Digest != "" {
				t.Fatalf("%q: bad tag list source %+v", in, s)
			}
			validTags(t, in, s.Tags)
		case TagRegex:
			if s.Regex == nil || s.Tags != nil || s.Digest != "" {
				t.Fatalf("%q: bad regex source %+v", in, s)
			}
		case DigestRef:
			if s.Tags != nil || s.Regex != nil || checkDigest(s.Digest) != nil {
				t.Fatalf("%q: bad digest source %+v", in, s)
			}
		default:
			t.Fatalf("%q: unknown kind %d", in, s.Kind)
		}
		// The canonical form parses back to the same source (an upper-case
		// registry without a dot or port, which would not, is refused).
		c := srcString(s)
		s2, err := ParseSource(c)
		if err != nil {
			t.Fatalf("%q: canonical form %q does not parse: %v", in, c, err)
		}
		if c2 := srcString(s2); c2 != c || s2.Kind != s.Kind {
			t.Fatalf("%q: canonical form %q parses as %q (kind %d, was %d)", in, c, c2, s2.Kind, s.Kind)
		}
	})
}

func FuzzParseDestination(f *testing.F) {
	fuzzRefs(f, func(t *testing.T, in string) {
		d, err := ParseDestination(in)
		if err != nil {
			if !strings.Contains(err.Error(), "destination") {
				t.Fatalf("%q: error does not say destination: %v", in, err)
			}
			return
		}
		if d.Raw != in {
			t.Fatalf("Raw %q, want the input %q", d.Raw, in)
		}
		if IsLayout(d.Registry) {
			validLayout(t, in, d.Registry, d.Repository)
			return
		}
		if strings.Contains(in, ":/") {
			t.Fatalf("%q: a tag regex was accepted in a destination", in)
		}
		validRepository(t, in, d.Registry, d.Repository)
		validTags(t, in, d.Tags)
		if len(d.Tags) > 0 && d.Digest != "" {
			t.Fatalf("%q: destination with both tags %v and digest %s", in, d.Tags, d.Digest)
		}
		if d.Digest != "" && checkDigest(d.Digest) != nil {
			t.Fatalf("%q: invalid digest %q accepted", in, d.Digest)
		}
		id := d.identity()
		d2, err := ParseDestination(id)
		if err != nil || d2.identity() != id {
			t.Fatalf("%q: identity %q parses as %q, %v", in, id, d2.identity(), err)
		}
	})
}

// fuzzTags is the tag listing given to rules that need one.
var fuzzTags = []string{"latest", "1.0", "v3.5.1", "1.0", "3.20-alpine", ""}

func fuzzEnv(name string) (string, bool) {
	switch name {
	case "REGISTRY", "DST":
		return "harbor.example.com:8443", true
	case "NS":
		return "mirror", true
	case "TAG":
		return "v1", true
	case "EMPTY":
		return "", true
	}
	return "", false
}

const fuzzDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func FuzzLoadImagesFile(f *testing.F) {
	for _, s := range []string{
		// image-syncer images.yaml
		"quay.io/coreos/etcd:v3.5.0: harbor.example.com/mirror/etcd\n" +
			"quay.io/coreos/etcd:/^v3\\.5\\./: harbor.example.com/mirror/etcd\n" +
			"docker.io/library/nginx: harbor.example.com/mirror/nginx\n",
		// lists, renames, digests, ports
		"nginx:1.27:\n  - 127.0.0.1:5000/mirror/nginx\n  - 127.0.0.1:5000/team/nginx:stable\n" +
			"quay.io/a/b:1,2: r.io/ns/b:x,y\n" +
			"quay.io/a/d@" + fuzzDigest + ": [r.io/ns/d, r.io/ns/d@" + fuzzDigest + ", r.io/ns/d:pinned]\n",
		// env vars and the default destination
		"$REGISTRY/library/alpine: ${DST}/$NS/alpine\nredis:7: \"\"\nbusybox: $NOPE/x\n",
		// duplicate keys
		"nginx: a.io/x/nginx\nredis: a.io/x/redis\nnginx: b.io/y/nginx\n",
		// anchors and merge keys
		"base: &b\n  quay.io/a/b: r.io/ns/b\nall:\n  <<: *b\n  quay.io/a/c: r.io/ns/c\n",
		"quay.io/a/b:v1: &dst [r.io/ns/b, r.io/other/b]\nquay.io/a/c:v1: *dst\n",
		"<<: {quay.io/a/b: r.io/ns/b}\nquay.io/a/b: r.io/x/b\n",
		// errors: null, empty list, wrong types, renames that do not fit
		"nginx:\nredis: []\nalpine: {a: b}\nbusybox: [1, null]\n",
		"quay.io/a/b:/v1/: r.io/ns/b:one\nquay.io/a/c: r.io/ns/c:x,y\nquay.io/a/d:1,2,3: r.io/ns/d:x,y\n",
		"quay.io/a/b:v1: r.io/ns/b@" + fuzzDigest + "\n",
		// JSON
		"{\n  \"quay.io/coreos/etcd:v3.5.0\": \"harbor.example.com/mirror/etcd\",\n  \"nginx\": [\"r.io/a/nginx\", \"r.io/b/nginx:1\"]\n}\n",
		"{\"a.io/x/y\": \"b.io/x/y\", \"a.io/x/y\": \"c.io/x/y\"}",
		"\xef\xbb\xbf{\"nginx:1\": \"\"}",
		"[\"not\", \"a\", \"map\"]",
		"",
		"# only a comment\n",
		// image layouts
		"oci:./bundle: [registry.internal/mirror, 127.0.0.1:5000, oci:copy]\nnginx:1.27: [oci:./bundle, oci-archive:b.tar]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		for _, name := range []string{"images.yaml", "images.json"} {
			n, err := cfgfile.Decode(name, data)
			if err != nil {
				continue
			}
			opt := Options{DefaultRegistry: "mirror.example.com", DefaultNamespace: "library-mirror", LookupEnv: fuzzEnv}
			rules, err := FromNode(name, n, opt)
			if err != nil {
				continue
			}
			var all []Job
			for i := range rules {
				r := &rules[i]
				layoutSrc := IsLayout(r.Source.Registry)
				if layoutSrc {
					validLayout(t, r.Key, r.Source.Registry, r.Source.Repository)
				} else if r.Source.Registry == "" || r.Source.Repository == "" {
					t.Fatalf("%s: rule %q without registry or repository: %+v", name, r.Key, r.Source)
				}
				if len(r.Destinations) == 0 {
					t.Fatalf("%s: rule %q without destinations", name, r.Key)
				}
				for _, d := range r.Destinations {
					switch {
					case IsLayout(d.Registry):
						validLayout(t, r.Key, d.Registry, d.Repository)
					case layoutSrc && d.Repository == "": // a registry alone: paths go right below it
						if !domainRE.MatchString(d.Registry) {
							t.Fatalf("%s: rule %q: invalid registry %q", name, r.Key, d.Registry)
						}
					default:
						validRepository(t, r.Key, d.Registry, d.Repository)
					}
					if len(d.Tags) > 0 && d.Digest != "" {
						t.Fatalf("%s: rule %q: destination with tags and digest: %+v", name, r.Key, d)
					}
				}
				var listed []string
				if r.NeedsTagList() {
					listed = fuzzTags
				}
				jobs, err := r.Expand(listed)
				if err != nil {
					continue
				}
				for _, j := range jobs {
					if (j.Source.Tag == "") == (j.Source.Digest == "") {
						t.Fatalf("%s: rule %q: job source %v needs exactly one of tag and digest", name, r.Key, j.Source)
					}
					if j.Destination.Tag != "" && j.Destination.Digest != "" {
						t.Fatalf("%s: rule %q: job destination %v has tag and digest", name, r.Key, j.Destination)
					}
					if j.Rule != r {
						t.Fatalf("%s: rule %q: job points at another rule", name, r.Key)
					}
				}
				all = append(all, jobs...)
			}
			_, _ = CheckJobs(all, nil)
		}
	})
}
