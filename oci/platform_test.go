package oci

import (
	"strings"
	"testing"
)

func TestPlatformFilter(t *testing.T) {
	f, err := ParseFilter([]string{"linux", "windows:10.0.17763"}, []string{"amd64,arm:v7", " arm64 "})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.String(), "os=linux os=windows:10.0.17763 arch=amd64 arch=arm:v7 arch=arm64"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	platforms, err := ParsePlatforms([]string{"linux/arm64", "linux/arm/v7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p          *Platform
		want, plat bool
	}{
		{&Platform{OS: "linux", Arch: "amd64"}, true, false},
		{&Platform{OS: "linux", Arch: "arm64", Variant: "v8"}, true, true},
		{&Platform{OS: "linux", Arch: "arm", Variant: "v7"}, true, true},
		{&Platform{OS: "linux", Arch: "arm", Variant: "v6"}, false, false},
		{&Platform{OS: "windows", Arch: "amd64", OSVersion: "10.0.17763"}, true, false},
		{&Platform{OS: "windows", Arch: "amd64", OSVersion: "10.0.20348"}, false, false},
		{&Platform{OS: "darwin", Arch: "amd64"}, false, false},
		{nil, false, false},
	} {
		if got := f.Match(tc.p); got != tc.want {
			t.Errorf("Match(%+v) = %v, want %v", tc.p, got, tc.want)
		}
		if got := platforms.Match(tc.p); got != tc.plat {
			t.Errorf("platforms Match(%+v) = %v, want %v", tc.p, got, tc.plat)
		}
	}
	if !(Filter{}).Match(nil) || !(Filter{}).Empty() {
		t.Error("an empty filter keeps everything")
	}
	for _, bad := range [][2][]string{{nil, {":v7"}}, {{":1"}, nil}} {
		if _, err := ParseFilter(bad[0], bad[1]); err == nil {
			t.Errorf("ParseFilter(%q, %q): no error", bad[0], bad[1])
		}
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "a/b/c/d"} {
		if _, err := ParsePlatforms([]string{bad}); err == nil || !strings.Contains(err.Error(), "os/arch") {
			t.Errorf("ParsePlatforms(%q): %v", bad, err)
		}
	}
}
