package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/cfgfile"
)

var (
	dA = "sha256:" + strings.Repeat("a", 64)
	dB = "sha256:" + strings.Repeat("b", 64)
	d5 = "sha512:" + strings.Repeat("c", 128)
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// srcString renders a parsed source: registry/repo plus its selector.
func srcString(s Source) string {
	out := s.Registry + "/" + s.Repository
	switch s.Kind {
	case TagList:
		out += ":" + strings.Join(s.Tags, ",")
	case TagRegex:
		out += ":/" + s.Regex.String() + "/"
	case DigestRef:
		out += "@" + s.Digest
	}
	return out
}

func ruleString(r Rule) string {
	ds := make([]string, len(r.Destinations))
	for i, d := range r.Destinations {
		ds[i] = d.identity()
	}
	return fmt.Sprintf("%d %s => %s", r.Line, srcString(r.Source), strings.Join(ds, " | "))
}

func jobStrings(jobs []Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Source.String() + " -> " + j.Destination.String()
	}
	return out
}

// checkErrs asserts err is an ErrorList whose i-th line contains want[i].
func checkErrs(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %T is not an ErrorList: %v", err, err)
	}
	if len(list) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(list), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(list[i].Error(), w) {
			t.Errorf("error %d:\n got %s\nwant fragment %s", i, list[i], w)
		}
		var ce *cfgfile.Error
		if !errors.As(list[i], &ce) {
			t.Errorf("error %d is %T, not *cfgfile.Error", i, list[i])
		}
	}
}

var defaults = Options{DefaultRegistry: "Mirror.example.com:5000", DefaultNamespace: "mirror"}

var loadFileTests = []struct {
	name string
	file string // created with data unless data is "-"
	data string
	opt  Options
	want []string // ruleString of each rule
	errs []string // fragment of each error line
}{
	{
		name: "yaml all source forms, string and list values",
		file: "images.yaml",
		data: "quay.io/coreos/etcd: r.io/ns/etcd\n" +
			"quay.io/a/b:v1: r.io/ns/b\n" +
			"quay.io/a/c:v1, v2 ,v3: [r.io/ns/c, r.io/other/c]\n" +
			"quay.io/a/d@" + dA + ": r.io/ns/d\n" +
			"quay.io/a/e:/^v1\\.[0-9]+$/: r.io/ns/e\n",
		want: []string{
			"1 quay.io/coreos/etcd => r.io/ns/etcd",
			"2 quay.io/a/b:v1 => r.io/ns/b",
			"3 quay.io/a/c:v1,v2,v3 => r.io/ns/c | r.io/other/c",
			"4 quay.io/a/d@" + dA + " => r.io/ns/d",
			`5 quay.io/a/e:/^v1\.[0-9]+$/ => r.io/ns/e`,
		},
	},
	{
		name: "json file with renames and digest",
		file: "images.json",
		data: "{\n  \"quay.io/a/b:1,2\": \"r.io/ns/b:x,y\",\n  \"quay.io/a/c@" + d5 + "\": [\"r.io/ns/c:pinned\", \"r.io/ns/c@" + d5 + "\"]\n}\n",
		want: []string{
			"2 quay.io/a/b:1,2 => r.io/ns/b:x,y",
			"3 quay.io/a/c@" + d5 + " => r.io/ns/c:pinned | r.io/ns/c@" + d5,
		},
	},
	{
		name: "docker.io normalisation",
		file: "images.yml",
		data: "nginx: user/nginx\nuser/app:1: index.docker.io/user/app\nregistry-1.docker.io/redis:7: docker.io/library/redis\nDocker.IO/x/y: Quay.IO/x/y\n",
		want: []string{
			"1 docker.io/library/nginx => docker.io/user/nginx",
			"2 docker.io/user/app:1 => docker.io/user/app",
			"3 docker.io/library/redis:7 => docker.io/library/redis",
			"4 docker.io/x/y => quay.io/x/y",
		},
	},
	{
		name: "registry ports and localhost",
		file: "images.yaml",
		data: "localhost:5000/ns/repo:tag: 127.0.0.1:5001/ns/repo\nlocalhost/ns/repo: '[::1]:5002/ns/repo:t2'\nlocalhost:5000/repo: localhost:5001/repo\n",
		want: []string{
			"1 localhost:5000/ns/repo:tag => 127.0.0.1:5001/ns/repo",
			"2 localhost/ns/repo => [::1]:5002/ns/repo:t2",
			"3 localhost:5000/repo => localhost:5001/repo",
		},
	},
	{
		name: "regex containing colon, slash and comma",
		file: "images.yaml",
		data: "'localhost:5000/a/b:/^(v1|v2):x/y,z{1,2}$/': r.io/ns/b\n",
		want: []string{"1 localhost:5000/a/b:/^(v1|v2):x/y,z{1,2}$/ => r.io/ns/b"},
	},
	{
		name: "duplicate destinations are dropped silently",
		file: "images.yaml",
		data: "nginx:1:\n  - r.io/ns/nginx\n  - r.io/ns/nginx\n  - R.IO/ns/nginx\n  - r.io/ns/nginx:2\n",
		want: []string{"1 docker.io/library/nginx:1 => r.io/ns/nginx | r.io/ns/nginx:2"},
	},
	{
		name: "empty destination with defaults",
		file: "images.yaml",
		data: "nginx: ''\nquay.io/coreos/etcd:v3: ''\nreg.io/a/b/c: ['']\nquay.io/etcd@" + dA + ": \"\"\n",
		opt:  defaults,
		want: []string{
			"1 docker.io/library/nginx => mirror.example.com:5000/mirror/nginx",
			"2 quay.io/coreos/etcd:v3 => mirror.example.com:5000/mirror/etcd",
			"3 reg.io/a/b/c => mirror.example.com:5000/mirror/b/c",
			"4 quay.io/etcd@" + dA + " => mirror.example.com:5000/mirror/etcd",
		},
	},
	{
		name: "empty destination with a default registry alone (image-syncer v1.5)",
		file: "images.yaml",
		data: "nginx: ''\nquay.io/coreos/etcd:v3: ''\nreg.io/a/b/c: ['', r.io/x/c]\nquay.io/etcd@" + dA + ": \"\"\n",
		opt:  Options{DefaultRegistry: "Mirror.example.com:5000"},
		want: []string{
			"1 docker.io/library/nginx => mirror.example.com:5000/library/nginx",
			"2 quay.io/coreos/etcd:v3 => mirror.example.com:5000/coreos/etcd",
			"3 reg.io/a/b/c => mirror.example.com:5000/a/b/c | r.io/x/c",
			"4 quay.io/etcd@" + dA + " => mirror.example.com:5000/etcd",
		},
	},
	{
		name: "empty destination without a default registry",
		file: "images.yaml",
		data: "nginx: ''\nredis: ['r.io/ns/redis', '']\n",
		opt:  Options{DefaultNamespace: "ns"},
		errs: []string{
			`images.yaml:1: key "nginx": empty destination needs --registry (or DEFAULT_REGISTRY), with or without --namespace (DEFAULT_NAMESPACE)`,
			`images.yaml:2: key "redis": empty destination needs --registry`,
		},
	},
	{
		name: "env expansion set",
		file: "images.yaml",
		data: "nginx: $REG/${NS}/nginx\nredis: [\"${REG}/x/redis:$TAG\"]\n",
		opt:  Options{LookupEnv: env(map[string]string{"REG": "r.io", "NS": "team", "TAG": "stable"})},
		want: []string{
			"1 docker.io/library/nginx => r.io/team/nginx",
			"2 docker.io/library/redis => r.io/x/redis:stable",
		},
	},
	{
		name: "env expansion unset and malformed",
		file: "images.yaml",
		data: "nginx: $REG/ns/nginx\nredis:\n  - ok.io/ns/redis\n  - ${REG/ns/redis\nbusybox: ${}/x/y\n",
		opt:  Options{LookupEnv: env(nil)},
		errs: []string{
			`images.yaml:1: key "nginx": destination "$REG/ns/nginx": environment variable "REG" is not set`,
			`images.yaml:4: key "redis": destination "${REG/ns/redis": unterminated ${`,
			`images.yaml:5: key "busybox": destination "${}/x/y": malformed variable reference ${}`,
		},
	},
	{
		name: "env expansion in source keys (an extension)",
		file: "images.yaml",
		data: "$SRC/lib/app:1.0: r.io/ns/app\n${NOPE}/lib/x: r.io/ns/x\n",
		opt:  Options{LookupEnv: env(map[string]string{"SRC": "127.0.0.1:5000"})},
		errs: []string{`images.yaml:2: key "${NOPE}/lib/x": source: environment variable "NOPE" is not set`},
	},
	{
		name: "env expansion in a source key",
		file: "images.yaml",
		data: "$SRC/lib/app:1.0: r.io/ns/app\n",
		opt:  Options{LookupEnv: env(map[string]string{"SRC": "127.0.0.1:5000"})},
		want: []string{"1 127.0.0.1:5000/lib/app:1.0 => r.io/ns/app"},
	},
	{
		name: "env expansion yields an invalid name",
		file: "images.yaml",
		data: "nginx: $REG/ns/nginx\n",
		opt:  Options{LookupEnv: env(map[string]string{"REG": "r.io/Bad"})},
		errs: []string{`images.yaml:1: key "nginx": destination "$REG/ns/nginx" (expanded to "r.io/Bad/ns/nginx"): invalid repository path "Bad/ns/nginx": must be lowercase`},
	},
	{
		name: "yaml duplicate key names both lines",
		file: "images.yaml",
		data: "# header\nnginx: a.io/x/nginx\n\nquay.io/a/b: a.io/x/b\nnginx: b.io/x/nginx\n",
		errs: []string{`images.yaml:5: key "nginx": duplicate key (first defined at line 2)`},
	},
	{
		name: "json duplicate key names both lines",
		file: "images.json",
		data: "{\n  \"quay.io/a/b\": \"a.io/x/b\",\n  \"nginx\": \"a.io/x/n\",\n  \"quay.io/a/b\": \"b.io/x/b\"\n}",
		errs: []string{`images.json:4: key "quay.io/a/b": duplicate key (first defined at line 2)`},
	},
	{
		name: "malformed yaml gives the line",
		file: "images.yaml",
		data: "nginx: a.io/x/nginx\nredis: [a.io/x/redis\nbusybox: a.io/x/busybox\n",
		errs: []string{`images.yaml:2: invalid YAML: did not find expected ',' or ']'`},
	},
	{
		name: "malformed json gives the line",
		file: "images.json",
		data: "{\n  \"nginx\": \"a.io/x/nginx\",\n  \"redis\" \"a.io/x/redis\"\n}",
		errs: []string{`images.json:3: invalid JSON: invalid character '"' after object key`},
	},
	{
		name: "unknown extension",
		file: "images.txt",
		data: "nginx: a.io/x/nginx\n",
		errs: []string{`images.txt: unsupported file extension ".txt" (use .json, .yaml or .yml)`},
	},
	{
		name: "missing file",
		file: "missing.yaml",
		data: "-",
		errs: []string{`missing.yaml: file not found`},
	},
	{
		name: "empty file has no rules",
		file: "images.yaml",
		data: "# nothing yet\n",
	},
	{
		name: "top level must be a map",
		file: "images.yaml",
		data: "- nginx\n- redis\n",
		errs: []string{`images.yaml:1: images must be a map from source to destination(s), not a list`},
	},
	{
		name: "null value, empty list, non-string values",
		file: "images.yaml",
		data: "nginx:\nredis: []\nbusybox: [a.io/x/busybox, 5, {a: b}]\nalpine: {a: b}\nubuntu: true\n",
		errs: []string{
			`images.yaml:1: key "nginx": no destination (null); write "" for the default destination`,
			`images.yaml:2: key "redis": empty destination list`,
			`images.yaml:3: key "busybox": destination must be a string or a list of strings (item 2 is a number)`,
			`images.yaml:3: key "busybox": destination must be a string or a list of strings (item 3 is a map)`,
			`images.yaml:4: key "alpine": destination must be a string or a list of strings, not a map`,
			`images.yaml:5: key "ubuntu": destination must be a string or a list of strings, not a bool`,
		},
	},
	{
		name: "json null and non-string list item",
		file: "images.json",
		data: "{\n\"nginx\": null,\n\"redis\": [\n\"a.io/x/r\",\n7\n]\n}",
		errs: []string{
			`images.json:2: key "nginx": no destination (null); write "" for the default destination`,
			`images.json:5: key "redis": destination must be a string or a list of strings (item 2 is a number)`,
		},
	},
	{
		name: "count mismatches against tag list and digest sources",
		file: "images.yaml",
		data: "q.io/a/b:1,2,3: r.io/x/b:t\n" +
			"q.io/a/c:1,2,3: r.io/x/c:a,b\n" +
			"q.io/a/d:1: r.io/x/d:a,b\n" +
			"q.io/a/e@" + dA + ": r.io/x/e:a,b\n" +
			"q.io/a/f:1,2: ['r.io/x/f:a,b', r.io/y/f:c]\n",
		errs: []string{
			`images.yaml:1: key "q.io/a/b:1,2,3": destination "r.io/x/b:t" renames to the single tag "t" but the source has 3 tags`,
			`images.yaml:2: key "q.io/a/c:1,2,3": destination "r.io/x/c:a,b" lists 2 tags but the source has 3 tags`,
			`images.yaml:3: key "q.io/a/d:1": destination "r.io/x/d:a,b" lists 2 tags but the source has 1 tags`,
			`images.yaml:4: key "q.io/a/e@` + dA + `": destination "r.io/x/e:a,b" lists 2 tags but the source has 1 item (a digest)`,
			`images.yaml:5: key "q.io/a/f:1,2": destination "r.io/y/f:c" renames to the single tag "c" but the source has 2 tags`,
		},
	},
	{
		name: "positional rename needs a fixed tag list",
		file: "images.yaml",
		data: "q.io/a/b: r.io/x/b:a,b\nq.io/a/c:/v/: r.io/x/c:a,b\n",
		errs: []string{
			`images.yaml:1: key "q.io/a/b": destination "r.io/x/b:a,b" lists 2 tags but the source is all tags`,
			`images.yaml:2: key "q.io/a/c:/v/": destination "r.io/x/c:a,b" lists 2 tags but the source is a tag regex`,
		},
	},
	{
		name: "single rename on all tags or regex is checked later",
		file: "images.yaml",
		data: "q.io/a/b: r.io/x/b:latest\nq.io/a/c:/v/: r.io/x/c:latest\nq.io/a/d@" + dA + ": r.io/x/d:v1\n",
		want: []string{
			"1 q.io/a/b => r.io/x/b:latest",
			"2 q.io/a/c:/v/ => r.io/x/c:latest",
			"3 q.io/a/d@" + dA + " => r.io/x/d:v1",
		},
	},
	{
		name: "bad regex, empty regex, missing final slash",
		file: "images.yaml",
		data: "'q.io/a/b:/v(1/': r.io/x/b\n'q.io/a/c://': r.io/x/c\n'q.io/a/d:/v1': r.io/x/d\n",
		errs: []string{
			"images.yaml:1: key \"q.io/a/b:/v(1/\": bad tag regex: error parsing regexp: missing closing ): `v(1`",
			`images.yaml:2: key "q.io/a/c://": empty tag regex`,
			`images.yaml:3: key "q.io/a/d:/v1": tag regex "/v1" must be written as :/REGEX/ (missing final /)`,
		},
	},
	{
		name: "digest destinations",
		file: "images.yaml",
		data: "q.io/a/b@" + dA + ": r.io/x/b@" + dB + "\n" +
			"q.io/a/c: r.io/x/c@" + dA + "\n" +
			"q.io/a/d:1,2: r.io/x/d@" + dA + "\n" +
			"q.io/a/e:/x/: r.io/x/e@" + dA + "\n",
		errs: []string{
			`images.yaml:1: key "q.io/a/b@` + dA + `": destination "r.io/x/b@` + dB + `": digest ` + dB + ` differs from the source digest ` + dA,
			`images.yaml:2: key "q.io/a/c": destination "r.io/x/c@` + dA + `": a digest destination needs a source digest or a single source tag, not all tags`,
			`images.yaml:3: key "q.io/a/d:1,2": destination "r.io/x/d@` + dA + `": a digest destination needs a source digest or a single source tag, not a tag list`,
			`images.yaml:4: key "q.io/a/e:/x/": destination "r.io/x/e@` + dA + `": a digest destination needs a source digest or a single source tag, not a tag regex`,
		},
	},
	{
		name: "digest destination allowed for equal digest and single tag",
		file: "images.yaml",
		data: "q.io/a/b@" + dA + ": r.io/x/b@" + dA + "\nq.io/a/c:1: r.io/x/c@" + dB + "\n",
		want: []string{
			"1 q.io/a/b@" + dA + " => r.io/x/b@" + dA,
			"2 q.io/a/c:1 => r.io/x/c@" + dB,
		},
	},
	{
		name: "empty source key",
		file: "images.yaml",
		data: "nginx: r.io/x/nginx\n'': r.io/x/y\n",
		errs: []string{`images.yaml:2: empty source`},
	},
	{
		name: "bad repository names are all reported",
		file: "images.yaml",
		data: "quay.io/Coreos/etcd: r.io/x/etcd\nquay.io/a/b-: r.io/x/b\nquay.io/a//b: r.io/x/b\nquay.io: r.io/x/c\nbad_host.io/a/b: r.io/x/d\nnginx: r.io/x/ngi#nx\n",
		errs: []string{
			`images.yaml:1: key "quay.io/Coreos/etcd": invalid repository path "Coreos/etcd": must be lowercase`,
			`images.yaml:2: key "quay.io/a/b-": invalid repository path "a/b-": component "b-" must match`,
			`images.yaml:3: key "quay.io/a//b": invalid repository path "a//b": empty path component`,
			`images.yaml:5: key "bad_host.io/a/b": invalid registry "bad_host.io"`,
			`images.yaml:6: key "nginx": destination "r.io/x/ngi#nx": invalid repository path "x/ngi#nx"`,
		},
	},
	{
		name: "bad tags and digests",
		file: "images.yaml",
		data: "q.io/a/b:1,,2: r.io/x/b\nq.io/a/c:: r.io/x/c\nq.io/a/d:-x: r.io/x/d\n" +
			"q.io/a/e@sha256:abc: r.io/x/e\nq.io/a/f@md5:" + strings.Repeat("a", 32) + ": r.io/x/f\n" +
			"q.io/a/g:1@" + dA + ": r.io/x/g\nq.io/a/h: r.io/x/h:1@" + dA + "\n",
		errs: []string{
			`images.yaml:1: key "q.io/a/b:1,,2": empty item 2 in tag list "1,,2"`,
			`images.yaml:2: key "q.io/a/c:": empty tag after ':'`,
			`images.yaml:3: key "q.io/a/d:-x": invalid tag "-x"`,
			`images.yaml:4: key "q.io/a/e@sha256:abc": invalid digest "sha256:abc": sha256 needs 64 lowercase hex digits`,
			`images.yaml:5: key "q.io/a/f@md5:` + strings.Repeat("a", 32) + `": invalid digest "md5:` + strings.Repeat("a", 32) + `": unsupported algorithm "md5"`,
			`images.yaml:6: key "q.io/a/g:1@` + dA + `": give either a tag or a digest, not both`,
			`images.yaml:7: key "q.io/a/h": destination "r.io/x/h:1@` + dA + `": give either a tag or a digest, not both`,
		},
	},
	{
		name: "a bad source and its destinations are all checked, without noise",
		file: "images.yaml",
		data: "NGINX: ''\nquay.io/A/b: [r.io/x/Y, '']\n",
		opt:  defaults,
		errs: []string{
			`images.yaml:1: key "NGINX": invalid repository path "NGINX": must be lowercase`,
			`images.yaml:2: key "quay.io/A/b": invalid repository path "A/b": must be lowercase`,
			`images.yaml:2: key "quay.io/A/b": destination "r.io/x/Y": invalid repository path "x/Y": must be lowercase`,
		},
	},
	{
		name: "yaml anchors in an images file",
		file: "images.yaml",
		data: "quay.io/a/app:1: &d [r.io/x/app, s.io/y/app]\nquay.io/a/lib:2: *d\n",
		want: []string{
			"1 quay.io/a/app:1 => r.io/x/app | s.io/y/app",
			"2 quay.io/a/lib:2 => r.io/x/app | s.io/y/app",
		},
	},
	{
		name: "regex in destination",
		file: "images.yaml",
		data: "q.io/a/b: r.io/x/b:/v1/\n",
		errs: []string{`images.yaml:1: key "q.io/a/b": destination "r.io/x/b:/v1/": a tag regex (:/REGEX/) is only allowed in a source`},
	},
}

func TestLoadFile(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tt := range loadFileTests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.data != "-" {
				if err := os.WriteFile(tt.file, []byte(tt.data), 0o644); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(tt.file)
			}
			rules, err := LoadFile(tt.file, tt.opt)
			if tt.errs != nil {
				checkErrs(t, err, tt.errs)
				if rules != nil {
					t.Errorf("rules returned with errors: %v", rules)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(rules))
			for i, r := range rules {
				got[i] = ruleString(r)
				if r.File != tt.file {
					t.Errorf("rule %d: File = %q", i, r.File)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("rules:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestLoadFileMissingIsNotExist(t *testing.T) {
	_, err := LoadFile(t.TempDir()+"/none.yaml", Options{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

func TestFromNodeLegacyConfig(t *testing.T) {
	data := "auth:\n  quay.io: {username: u, password: p}\nimages:\n  quay.io/a/b:1: r.io/x/b\n  nginx: ''\n"
	n, err := cfgfile.Decode("config.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := n.Get("images")
	rules, err := FromNode("config.yaml", img, Options{DefaultRegistry: "r.io", DefaultNamespace: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || ruleString(rules[0]) != "4 quay.io/a/b:1 => r.io/x/b" || ruleString(rules[1]) != "5 docker.io/library/nginx => r.io/m/nginx" {
		t.Errorf("got %v", rules)
	}
	if _, err := FromNode("config.yaml", nil, Options{}); err != nil {
		t.Errorf("nil node: %v", err)
	}
}

func TestParseSource(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "nginx", want: "docker.io/library/nginx"},
		{in: "nginx:1.25", want: "docker.io/library/nginx:1.25"},
		{in: "user/app", want: "docker.io/user/app"},
		{in: "library/nginx", want: "docker.io/library/nginx"},
		{in: "index.docker.io/nginx", want: "docker.io/library/nginx"},
		{in: "registry-1.docker.io/user/app", want: "docker.io/user/app"},
		{in: "registry.hub.docker.com/nginx", want: "docker.io/library/nginx"}, // an alias credentials knew, rules did not
		{in: "Quay.IO/a/b:1, 2 ,3", want: "quay.io/a/b:1,2,3"},
		{in: "quay.io/etcd", want: "quay.io/etcd"},
		{in: "localhost/a", want: "localhost/a"},
		{in: "MyReg/app:1", err: `registry "MyReg" is ambiguous`},
		{in: "localhost:5000/ns/repo:tag", want: "localhost:5000/ns/repo:tag"},
		{in: "localhost:5000/ns/repo", want: "localhost:5000/ns/repo"},
		{in: "127.0.0.1:5000/a__b/c-d.e:T_1.x-y", want: "127.0.0.1:5000/a__b/c-d.e:T_1.x-y"},
		{in: "[::1]:5000/a/b@" + dA, want: "[::1]:5000/a/b@" + dA},
		{in: "q.io/a/b@" + d5, want: "q.io/a/b@" + d5},
		{in: "q.io/a/b:/v1/", want: "q.io/a/b:/v1/"},
		{in: "localhost:5000/a/b:/^v[0-9]+:x/y$/", want: "localhost:5000/a/b:/^v[0-9]+:x/y$/"},
		{in: "", err: "empty source"},
		{in: "q.io/a/b:t@" + dA, err: "give either a tag or a digest"},
		{in: "q.io/a/b@sha256:" + strings.Repeat("A", 64), err: "64 lowercase hex digits"},
		{in: "q.io/a/b@sha256", err: `invalid digest "sha256"`},
		{in: "q.io/a/b@", err: "empty digest"},
		{in: "q.io/a/b:" + strings.Repeat("x", 129), err: "invalid tag"},
		{in: "q.io/a/b:/(/", err: "bad tag regex: error parsing regexp"},
		{in: "q.io/", err: `missing repository path after registry "q.io"`},
		{in: "NGINX", err: `must be lowercase`},
		{in: "q.io/a/" + strings.Repeat("b", 260), err: "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseSource(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := srcString(s); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseDestination(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "r.io/x/y", want: "r.io/x/y"},
		{in: "nginx", want: "docker.io/library/nginx"},
		{in: "r.io:5000/x/y:t", want: "r.io:5000/x/y:t"},
		{in: "r.io/x/y:a, b,c", want: "r.io/x/y:a,b,c"},
		{in: "r.io/x/y@" + dA, want: "r.io/x/y@" + dA},
		{in: "", err: "empty destination"},
		{in: "r.io/x/y:/v/", err: "only allowed in a source"},
		{in: "r.io/x/y:a,", err: `empty item 2 in tag list "a,"`},
		{in: "r.io/x/Y", err: "must be lowercase"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := ParseDestination(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), fmt.Sprintf("destination %q", tt.in)) {
					t.Fatalf("got %v, want error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := d.identity(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if d.Raw != tt.in {
				t.Errorf("Raw = %q", d.Raw)
			}
		})
	}
}

// oneRule builds a rule from a key and destinations through FromNode.
func oneRule(t *testing.T, key string, dests []string) *Rule {
	t.Helper()
	val, _ := json.Marshal(dests)
	k, _ := json.Marshal(key)
	n, err := cfgfile.Decode("rules.yaml", []byte("# rule\n"+string(k)+": "+string(val)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := FromNode("rules.yaml", n, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &rules[0]
}

var expandTests = []struct {
	name   string
	key    string
	dests  []string
	listed []string
	want   []string
	err    string
}{
	{
		name:   "all tags: listing order, deduplicated, each destination",
		key:    "q.io/a/b",
		dests:  []string{"r.io/x/b", "s.io/y/b"},
		listed: []string{"2", "1", "2", "latest"},
		want: []string{
			"q.io/a/b:2 -> r.io/x/b:2", "q.io/a/b:2 -> s.io/y/b:2",
			"q.io/a/b:1 -> r.io/x/b:1", "q.io/a/b:1 -> s.io/y/b:1",
			"q.io/a/b:latest -> r.io/x/b:latest", "q.io/a/b:latest -> s.io/y/b:latest",
		},
	},
	{
		name:   "all tags: empty listing gives no jobs",
		key:    "q.io/a/b",
		dests:  []string{"r.io/x/b"},
		listed: nil,
		want:   []string{},
	},
	{
		name:   "all tags: single rename with one tag",
		key:    "q.io/a/b",
		dests:  []string{"r.io/x/b:stable"},
		listed: []string{"1.0"},
		want:   []string{"q.io/a/b:1.0 -> r.io/x/b:stable"},
	},
	{
		name:   "all tags: single rename with two tags",
		key:    "q.io/a/b",
		dests:  []string{"r.io/x/b:stable"},
		listed: []string{"1.0", "2.0"},
		err:    `rules.yaml:2: key "q.io/a/b": destination "r.io/x/b:stable" renames to 1 tag(s) (stable) but the source lists 2 (1.0, 2.0)`,
	},
	{
		name:   "regex: unanchored match",
		key:    "q.io/a/b:/v1/",
		dests:  []string{"r.io/x/b"},
		listed: []string{"v1", "xv1y", "v2", "v1.1"},
		want:   []string{"q.io/a/b:v1 -> r.io/x/b:v1", "q.io/a/b:xv1y -> r.io/x/b:xv1y", "q.io/a/b:v1.1 -> r.io/x/b:v1.1"},
	},
	{
		name:   "regex: single rename matching 1 tag",
		key:    "q.io/a/b:/^v1\\.2$/",
		dests:  []string{"r.io/x/b:stable"},
		listed: []string{"v1.1", "v1.2", "v1.3"},
		want:   []string{"q.io/a/b:v1.2 -> r.io/x/b:stable"},
	},
	{
		name:   "regex: single rename matching 0 tags",
		key:    "q.io/a/b:/^v9/",
		dests:  []string{"r.io/x/b:stable"},
		listed: []string{"v1.1", "v1.2"},
		err:    `rules.yaml:2: key "q.io/a/b:/^v9/": destination "r.io/x/b:stable" renames to 1 tag(s) (stable) but the source matches no tags`,
	},
	{
		name:   "regex: single rename matching 2 tags",
		key:    "q.io/a/b:/^v1/",
		dests:  []string{"r.io/x/b:stable"},
		listed: []string{"v1.1", "v1.2", "v2"},
		err:    `rules.yaml:2: key "q.io/a/b:/^v1/": destination "r.io/x/b:stable" renames to 1 tag(s) (stable) but the source matches 2 (v1.1, v1.2)`,
	},
	{
		name:   "tag list: positional rename and plain destination, items outer",
		key:    "q.io/a/b:1,2,3",
		dests:  []string{"r.io/x/b:a,b,c", "s.io/y/b"},
		listed: []string{"ignored"},
		want: []string{
			"q.io/a/b:1 -> r.io/x/b:a", "q.io/a/b:1 -> s.io/y/b:1",
			"q.io/a/b:2 -> r.io/x/b:b", "q.io/a/b:2 -> s.io/y/b:2",
			"q.io/a/b:3 -> r.io/x/b:c", "q.io/a/b:3 -> s.io/y/b:3",
		},
	},
	{
		name:  "tag list: single tag rename",
		key:   "nginx:1.25",
		dests: []string{"r.io/x/nginx:stable"},
		want:  []string{"docker.io/library/nginx:1.25 -> r.io/x/nginx:stable"},
	},
	{
		name:  "tag list: duplicate tags give one job",
		key:   "q.io/a/b:1,1",
		dests: []string{"r.io/x/b"},
		want:  []string{"q.io/a/b:1 -> r.io/x/b:1"},
	},
	{
		name:  "tag list: single tag pinned to a digest",
		key:   "q.io/a/b:1",
		dests: []string{"r.io/x/b@" + dA},
		want:  []string{"q.io/a/b:1 -> r.io/x/b@" + dA},
	},
	{
		name:  "digest: plain destination is untagged, rename and pin",
		key:   "q.io/a/b@" + dA,
		dests: []string{"r.io/x/b", "r.io/x/b:v1", "s.io/y/b@" + dA},
		want: []string{
			"q.io/a/b@" + dA + " -> r.io/x/b",
			"q.io/a/b@" + dA + " -> r.io/x/b:v1",
			"q.io/a/b@" + dA + " -> s.io/y/b@" + dA,
		},
	},
}

func TestExpand(t *testing.T) {
	for _, tt := range expandTests {
		t.Run(tt.name, func(t *testing.T) {
			r := oneRule(t, tt.key, tt.dests)
			if r.NeedsTagList() != (r.Source.Kind == AllTags || r.Source.Kind == TagRegex) {
				t.Errorf("NeedsTagList = %v for kind %v", r.NeedsTagList(), r.Source.Kind)
			}
			jobs, err := r.Expand(tt.listed)
			if tt.err != "" {
				checkErrs(t, err, []string{tt.err})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := jobStrings(jobs); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("jobs:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			for _, j := range jobs {
				if j.Rule != r {
					t.Errorf("job %v does not point to its rule", j)
				}
				if (j.Source.Tag == "") == (j.Source.Digest == "") {
					t.Errorf("job source %v must have exactly one of tag and digest", j.Source)
				}
				if j.Destination.Tag != "" && j.Destination.Digest != "" {
					t.Errorf("job destination %v has both tag and digest", j.Destination)
				}
			}
		})
	}
}

func TestExpandHandBuiltRule(t *testing.T) {
	// A rule not built by the loader is still checked.
	r := &Rule{File: "x.yaml", Key: "k", Line: 3,
		Source:       Source{Registry: "q.io", Repository: "a/b", Kind: TagList, Tags: []string{"1", "2"}},
		Destinations: []Destination{{Registry: "r.io", Repository: "x/b", Tags: []string{"a", "b", "c"}}}}
	_, err := r.Expand(nil)
	checkErrs(t, err, []string{`x.yaml:3: key "k": destination "r.io/x/b:a,b,c" lists 3 tags but the source has 2 tags`})
}

func TestCheckJobs(t *testing.T) {
	load := func(t *testing.T, data string) []Job {
		t.Helper()
		n, err := cfgfile.Decode("images.yaml", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		rules, err := FromNode("images.yaml", n, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var jobs []Job
		for i := range rules {
			js, err := rules[i].Expand([]string{"1", "2"})
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, js...)
		}
		return jobs
	}
	tests := []struct {
		name string
		data string
		want []string
		errs []string
	}{
		{
			name: "identical pairs from two rules are deduplicated",
			data: "q.io/a/b:1: r.io/x/b\nq.io/a/b: [r.io/x/b, s.io/x/b]\n",
			want: []string{"q.io/a/b:1 -> r.io/x/b:1", "q.io/a/b:1 -> s.io/x/b:1", "q.io/a/b:2 -> r.io/x/b:2", "q.io/a/b:2 -> s.io/x/b:2"},
		},
		{
			name: "same destination from two sources",
			data: "q.io/a/b:1: r.io/x/b:latest\n\nq.io/a/c:2: r.io/x/b:latest\n",
			errs: []string{`images.yaml:3: key "q.io/a/c:2": destination "r.io/x/b:latest" is written from both "q.io/a/b:1" (images.yaml:1 key "q.io/a/b:1") and "q.io/a/c:2"`},
		},
		{
			name: "conflict inside one rule via a positional list",
			data: "q.io/a/b:1,2: r.io/x/b:same,same\n",
			errs: []string{`images.yaml:1: key "q.io/a/b:1,2": destination "r.io/x/b:same" is written from both "q.io/a/b:1" (images.yaml:1 key "q.io/a/b:1,2") and "q.io/a/b:2"`},
		},
		{
			name: "docker.io spellings conflict after normalisation",
			data: "nginx:1: r.io/x/n:1\nq.io/n:1: r.io/x/n\n",
			errs: []string{`images.yaml:2: key "q.io/n:1": destination "r.io/x/n:1" is written from both "docker.io/library/nginx:1" (images.yaml:1 key "nginx:1") and "q.io/n:1"`},
		},
		{
			name: "untagged digest pushes never conflict",
			data: "q.io/a/b@" + dA + ": r.io/x/b\nq.io/a/c@" + dB + ": r.io/x/b\nq.io/a/d:1: r.io/x/b@" + dA + "\n",
			want: []string{"q.io/a/b@" + dA + " -> r.io/x/b", "q.io/a/c@" + dB + " -> r.io/x/b", "q.io/a/d:1 -> r.io/x/b@" + dA},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs, err := CheckJobs(load(t, tt.data), nil)
			if tt.errs != nil {
				checkErrs(t, err, tt.errs)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := jobStrings(jobs); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("jobs:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestErrorList(t *testing.T) {
	l := ErrorList{errors.New("a"), &cfgfile.Error{File: "f", Line: 2, Key: "k", Msg: "m"}}
	if got := l.Error(); got != "a\nf:2: key \"k\": m" {
		t.Errorf("got %q", got)
	}
	var ce *cfgfile.Error
	if !errors.As(l, &ce) || ce.Line != 2 {
		t.Error("errors.As does not reach list members")
	}
}
