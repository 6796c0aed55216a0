package oci

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

type notFound struct{}

func (notFound) Error() string  { return "no such thing" }
func (notFound) NotFound() bool { return true }

func TestErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		err                 error
		permanent, notFound bool
	}{
		{nil, false, false},
		{errors.New("reset"), false, false},
		{Permanent(errors.New("bad")), true, false},
		{fmt.Errorf("wrapped: %w", Permanent(errors.New("bad"))), true, false},
		{fmt.Errorf("tag %q: %w", "a/b", ErrInvalidReference), true, false},
		{fmt.Errorf("manifest: %w", notFound{}), false, true},
	} {
		if got := IsPermanent(tc.err); got != tc.permanent {
			t.Errorf("IsPermanent(%v) = %v", tc.err, got)
		}
		if got := IsNotFound(tc.err); got != tc.notFound {
			t.Errorf("IsNotFound(%v) = %v", tc.err, got)
		}
	}
}

func TestDigestsAndTags(t *testing.T) {
	d := Digest([]byte("x"))
	for _, tc := range []struct {
		s           string
		digest, tag bool
	}{
		{d, true, false},
		{DigestWith("sha512:", []byte("x")), true, false},
		{strings.ToUpper(d), false, false},
		{d[:20], false, false},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", false, false},
		{"latest", false, true},
		{"v1/../../x", false, false},
		{"-x", false, false},
		{strings.Repeat("a", 129), false, false},
	} {
		if ValidDigest(tc.s) != tc.digest || ValidTag(tc.s) != tc.tag || ValidReference(tc.s) != (tc.digest || tc.tag) {
			t.Errorf("%q: digest %v tag %v", tc.s, ValidDigest(tc.s), ValidTag(tc.s))
		}
	}
}

func TestParse(t *testing.T) {
	d := Digest([]byte("x"))
	for _, tc := range []struct {
		raw, index, image string // want: "" ok, else part of the error
	}{
		{`{"manifests":[{"digest":"` + d + `"}]}`, "", "invalid reference"},
		{`{"manifests":[{"digest":"../../etc/passwd"}]}`, "invalid reference", "invalid reference"},
		{`{"config":{"digest":"` + d + `","size":1},"layers":[{"digest":"x","urls":["http://x"]}]}`, "", ""},
		{`{"config":{"digest":"` + d + `","size":-1}}`, "", "negative size"},
		{`{"config":{"digest":"sha256:zz"}}`, "", "invalid reference"},
		{`not json`, "parsing index", "parsing manifest"},
	} {
		_, err := ParseIndex([]byte(tc.raw))
		check := func(what string, err error, want string) {
			if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
				t.Errorf("%s %s: %v, want %q", what, tc.raw, err, want)
			}
			if err != nil && !IsPermanent(err) {
				t.Errorf("%s %s: %v is not permanent", what, tc.raw, err)
			}
		}
		check("index", err, tc.index)
		blobs, err := ImageBlobs([]byte(tc.raw))
		check("image", err, tc.image)
		if err == nil && len(blobs) != 1 {
			t.Errorf("%s: blobs %v, want the config only (a foreign layer is not copied)", tc.raw, blobs)
		}
	}
}

func TestSchemeOf(t *testing.T) {
	for _, tc := range []struct {
		in     string
		scheme Scheme
		rest   string
	}{
		{"registry.example:5000", SchemeRegistry, "registry.example:5000"},
		{"oci:./bundle", SchemeLayout, "./bundle"},
		{"oci-archive:/tmp/b.tar", SchemeArchive, "/tmp/b.tar"},
	} {
		if s, rest := SchemeOf(tc.in); s != tc.scheme || rest != tc.rest {
			t.Errorf("SchemeOf(%q) = %q, %q", tc.in, s, rest)
		}
	}
}
