package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/registry/client"
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

// childDesc is the part of an index entry the engine reads; the entry's bytes
// are kept as they are.
type childDesc struct {
	MediaType types.MediaType `json:"mediaType"`
	Digest    string          `json:"digest"`
	Size      int64           `json:"size"`
	Platform  *Platform       `json:"platform,omitempty"`
}

func parseIndex(raw []byte) ([]childDesc, error) {
	var idx struct {
		Manifests []childDesc `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, client.Permanent(fmt.Errorf("parsing index: %w", err))
	}
	for _, c := range idx.Manifests {
		if !client.ValidDigest(c.Digest) {
			return nil, client.Permanent(fmt.Errorf("index lists a child with the digest %q: %w", clip(c.Digest), client.ErrInvalidReference))
		}
	}
	return idx.Manifests, nil
}

// parseImage reads an image manifest's config and layers; every digest it
// names must be a valid digest before it is used in a URL.
func parseImage(raw []byte) (imageManifest, error) {
	var m imageManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, client.Permanent(fmt.Errorf("parsing manifest: %w", err))
	}
	for i, b := range append([]blobDesc{m.Config}, m.Layers...) {
		if i > 0 && len(b.URLs) > 0 {
			continue // foreign layer: never fetched
		}
		if !client.ValidDigest(b.Digest) {
			return m, client.Permanent(fmt.Errorf("manifest names a blob with the digest %q: %w", clip(b.Digest), client.ErrInvalidReference))
		}
		if b.Size < 0 {
			return m, client.Permanent(fmt.Errorf("manifest gives blob %s a negative size", b.Digest))
		}
	}
	return m, nil
}

// clip shortens untrusted text for a message.
func clip(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// filterIndex applies f to an index. Unchanged (every child kept) it returns
// raw itself, so the digest does not change. Otherwise it writes a new index
// keeping every field it does not understand, and records rewritten nested
// indexes in made (digest → bytes), since the source does not have them.
// kept is the number of images left.
func filterIndex(ctx context.Context, src Store, raw []byte, f Filter, made map[string]manifestBytes) (out []byte, kept int, err error) {
	return (&indexFilter{src: src, f: f, made: made, done: map[string]filtered{}}).filter(ctx, raw)
}

// indexFilter filters one index tree; a nested index listed again (by the
// same index or another) is read and filtered once.
type indexFilter struct {
	src  Store
	f    Filter
	made map[string]manifestBytes
	done map[string]filtered // nested index digest → its filtered form
}

type filtered struct {
	out  []byte
	kept int
}

func (x *indexFilter) filter(ctx context.Context, raw []byte) (out []byte, kept int, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, context.Cause(ctx)
	}
	src, f, made := x.src, x.f, x.made
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, 0, client.Permanent(fmt.Errorf("parsing index: %w", err))
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(top["manifests"], &entries); err != nil {
		return nil, 0, client.Permanent(fmt.Errorf("parsing index manifests: %w", err))
	}
	changed := false
	var keep []json.RawMessage
	for _, e := range entries {
		var d childDesc
		if err := json.Unmarshal(e, &d); err != nil {
			return nil, 0, client.Permanent(fmt.Errorf("parsing index entry: %w", err))
		}
		if !client.ValidDigest(d.Digest) {
			return nil, 0, client.Permanent(fmt.Errorf("index lists a child with the digest %q: %w", clip(d.Digest), client.ErrInvalidReference))
		}
		if d.MediaType.IsIndex() && d.Platform == nil {
			ctx, err := deeper(ctx, d.Digest)
			if err != nil {
				return nil, 0, err
			}
			r, ok := x.done[d.Digest]
			if !ok {
				if len(x.done) >= maxManifests {
					return nil, 0, errTooManyManifests
				}
				nested, _, err := src.GetManifest(ctx, d.Digest)
				if err != nil {
					return nil, 0, fmt.Errorf("nested index %s: %w", d.Digest, err)
				}
				if r.out, r.kept, err = x.filter(ctx, nested); err != nil {
					return nil, 0, err
				}
				x.done[d.Digest] = r
			}
			nout, n := r.out, r.kept
			if n == 0 {
				changed = true
				continue
			}
			kept += n
			if dg := client.Digest(nout); dg != d.Digest {
				made[dg] = manifestBytes{raw: nout, mediaType: d.MediaType}
				var m map[string]json.RawMessage
				_ = json.Unmarshal(e, &m)
				m["digest"], _ = json.Marshal(dg)
				m["size"], _ = json.Marshal(len(nout))
				e, _ = json.Marshal(m)
				changed = true
			}
			keep = append(keep, e)
			continue
		}
		if f.Match(d.Platform) {
			keep = append(keep, e)
			kept++
		} else {
			changed = true
		}
	}
	if !changed {
		return raw, kept, nil
	}
	if kept == 0 {
		return nil, 0, nil
	}
	top["manifests"], _ = json.Marshal(keep)
	out, err = json.Marshal(top)
	return out, kept, err
}

// imagePlatform reads the platform of a single image from its config blob.
func imagePlatform(ctx context.Context, src Store, raw []byte) (*Platform, error) {
	m, err := parseImage(raw)
	if err != nil {
		return nil, err
	}
	rc, _, err := src.GetBlob(ctx, m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	defer rc.Close()
	var p Platform
	if err := json.NewDecoder(io.LimitReader(rc, 16<<20)).Decode(&p); err != nil {
		return nil, nil // not an image config (an artifact): no platform
	}
	if p.OS == "" && p.Arch == "" {
		return nil, nil
	}
	return &p, nil
}

type blobDesc struct {
	MediaType types.MediaType `json:"mediaType"`
	Digest    string          `json:"digest"`
	Size      int64           `json:"size"`
	URLs      []string        `json:"urls,omitempty"`
}

type imageManifest struct {
	Config blobDesc   `json:"config"`
	Layers []blobDesc `json:"layers"`
}

type manifestBytes struct {
	raw       []byte
	mediaType types.MediaType
}
