package oci

import (
	"fmt"
	"strings"
)

// Platform is the platform of one image.
type Platform struct {
	OS        string `json:"os"`
	OSVersion string `json:"os.version,omitempty"`
	Arch      string `json:"architecture"`
	Variant   string `json:"variant,omitempty"`
}

// Filter keeps the images whose platform matches one of the OS specs (when
// any) and one of the architecture specs (when any).
type Filter struct {
	OS   []Platform // OS and optional OSVersion
	Arch []Platform // Arch and optional Variant
	// Platforms, when set, keeps the images matching one of these
	// os/arch[/variant] (a config file's platforms:, --platform).
	Platforms []Platform
}

// ParsePlatforms reads os/arch[/variant] values into a filter.
func ParsePlatforms(ps []string) (Filter, error) {
	var f Filter
	for _, v := range ps {
		parts := strings.Split(v, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return f, fmt.Errorf("platform %q: want os/arch[/variant]", v)
		}
		p := Platform{OS: parts[0], Arch: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		f.Platforms = append(f.Platforms, p)
	}
	return f, nil
}

// ParseFilter reads --os and --arch values: repeatable, comma-separated,
// `os:osversion` and `arch:variant`.
func ParseFilter(oses, arches []string) (Filter, error) {
	var f Filter
	for _, v := range splitList(oses) {
		name, ver, _ := strings.Cut(v, ":")
		if name == "" {
			return f, fmt.Errorf("--os %q: empty operating system", v)
		}
		f.OS = append(f.OS, Platform{OS: name, OSVersion: ver})
	}
	for _, v := range splitList(arches) {
		name, variant, _ := strings.Cut(v, ":")
		if name == "" {
			return f, fmt.Errorf("--arch %q: empty architecture", v)
		}
		f.Arch = append(f.Arch, Platform{Arch: name, Variant: variant})
	}
	return f, nil
}

func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// Empty reports whether the filter keeps everything.
func (f Filter) Empty() bool { return len(f.OS) == 0 && len(f.Arch) == 0 && len(f.Platforms) == 0 }

// Match reports whether p passes the filter. A missing platform never does
// (unless the filter is empty).
func (f Filter) Match(p *Platform) bool {
	if f.Empty() {
		return true
	}
	if p == nil {
		return false
	}
	if len(f.Platforms) > 0 {
		ok := false
		for _, q := range f.Platforms {
			ok = ok || (q.OS == p.OS && q.Arch == p.Arch && (q.Variant == "" || q.Variant == p.Variant))
		}
		if !ok {
			return false
		}
	}
	okOS := len(f.OS) == 0
	for _, o := range f.OS {
		if o.OS == p.OS && (o.OSVersion == "" || o.OSVersion == p.OSVersion) {
			okOS = true
		}
	}
	okArch := len(f.Arch) == 0
	for _, a := range f.Arch {
		if a.Arch == p.Arch && (a.Variant == "" || a.Variant == p.Variant) {
			okArch = true
		}
	}
	return okOS && okArch
}

func (f Filter) String() string {
	var parts []string
	for _, o := range f.OS {
		parts = append(parts, "os="+strings.TrimSuffix(o.OS+":"+o.OSVersion, ":"))
	}
	for _, a := range f.Arch {
		parts = append(parts, "arch="+strings.TrimSuffix(a.Arch+":"+a.Variant, ":"))
	}
	for _, q := range f.Platforms {
		parts = append(parts, "platform="+strings.TrimSuffix(q.OS+"/"+q.Arch+"/"+q.Variant, "/"))
	}
	return strings.Join(parts, " ")
}
