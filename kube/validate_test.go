package kube

import (
	"strings"
	"testing"
)

// Image references from pod specs are untrusted: anything that breaks the
// reference grammar is refused (and --from-cluster skips it).
func TestParseImageGrammar(t *testing.T) {
	for _, tc := range []struct {
		ref, want string // want: the error's words, or "" for valid
	}{
		{"nginx:1.27", ""},
		{"attacker.example/library/nginx:1.27", ""},
		{"127.0.0.1:5000/team/app@sha256:" + strings.Repeat("a", 64), ""},
		{"Evil/Upper:1", "bad repository"},
		{"a/../../b:1", "bad repository"},
		{"a/./b:1", "bad repository"},
		{"a//b:1", "bad repository"},
		{"x.io/a/b:-bad", "bad tag"},
		{"x.io/a/b:" + strings.Repeat("t", 129), "bad tag"},
		{"x.io/a\nb:1", "bad repository"},
		{"bad_host.io:x/a:1", "bad"},
		{"x.io/a@sha256:short", "bad digest"},
		{"x.io/a@sha256:" + strings.Repeat("A", 64), "bad digest"},
		{"x.io/a@sha512:" + strings.Repeat("a", 128), "bad digest"}, // a runtime resolves to sha256
		{"x.io/" + strings.Repeat("a", 256) + ":1", "bad repository"},
	} {
		_, err := ParseImage(tc.ref)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.ref, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want an error saying %q", tc.ref, err, tc.want)
		}
	}
}

// A bad reference in one container is skipped, naming namespace, workload
// and container; the rest of the workload's images are kept.
func TestCollectorSkipsBadReferences(t *testing.T) {
	c := collector{images: map[string]*Image{}, digests: map[string]map[string]bool{}}
	c.add(Container{Kind: "pod", Namespace: "team", Name: "evil", Container: "app"}, "Evil/Upper:1")
	c.add(Container{Kind: "pod", Namespace: "team", Name: "evil", Container: "side"}, "nginx:1")
	if len(c.bad) != 1 || c.bad[0].String() != `pod team/evil, container app: image "Evil/Upper:1": bad repository "Evil/Upper" (lower-case path components of letters and digits, separated by . _ __ or -)` {
		t.Errorf("skipped %v", c.bad)
	}
	if imgs := c.result(); len(imgs) != 1 || imgs[0].Name() != "docker.io/library/nginx:1" {
		t.Errorf("images %v", imgs)
	}
}

// The job flags that become object fields are checked before anything is
// printed or applied.
func TestJobSpecValidation(t *testing.T) {
	base := func() JobSpec {
		return JobSpec{Name: "mirror", Namespace: "ops", Image: "img:1", Shards: 2, Files: []RunFile{{Flag: "-f", Name: "imagesync.yaml"}}}
	}
	for _, tc := range []struct {
		name string
		edit func(*JobSpec)
		want string
	}{
		{"valid", func(*JobSpec) {}, ""},
		{"valid schedule", func(s *JobSpec) { s.Schedule = "*/15 3-5 1,15 JAN-mar mon-FRI" }, ""},
		{"descriptor", func(s *JobSpec) { s.Schedule = "@daily" }, ""},
		{"secret subdomain", func(s *JobSpec) { s.DockerConfigSecret = "reg.cred-1" }, ""},
		{"namespace upper case", func(s *JobSpec) { s.Namespace = "Ops" }, `namespace "Ops": want lower-case`},
		{"namespace injection", func(s *JobSpec) { s.Namespace = "ops\nkind: Secret" }, `namespace "ops\nkind: Secret"`},
		{"namespace too long", func(s *JobSpec) { s.Namespace = strings.Repeat("a", 64) }, "1 to 63 characters"},
		{"schedule 4 fields", func(s *JobSpec) { s.Schedule = "0 3 * *" }, `--schedule "0 3 * *": want 5 fields`},
		{"schedule minute 60", func(s *JobSpec) { s.Schedule = "60 3 * * *" }, `minute "60"`},
		{"schedule newline", func(s *JobSpec) { s.Schedule = "0 3 * * *\nx: y" }, "line breaks"},
		{"schedule bad step", func(s *JobSpec) { s.Schedule = "*/0 * * * *" }, "bad step"},
		{"schedule backwards", func(s *JobSpec) { s.Schedule = "0 5-3 * * *" }, "ends before it starts"},
		{"schedule unknown descriptor", func(s *JobSpec) { s.Schedule = "@fortnightly" }, "unknown descriptor"},
		{"schedule time zone", func(s *JobSpec) { s.Schedule = "TZ=UTC 0 3 * * *" }, "timeZone"},
		{"secret upper case", func(s *JobSpec) { s.DockerConfigSecret = "RegCred" }, `--docker-config-secret "RegCred"`},
		{"secret slash", func(s *JobSpec) { s.DockerConfigSecret = "a/b" }, "DNS subdomain"},
		{"secret empty label", func(s *JobSpec) { s.DockerConfigSecret = "a..b" }, "DNS subdomain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(&s)
			err := s.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
