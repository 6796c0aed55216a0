package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesync/imagesync/oci"
)

// Platform is the platform of one image (oci.Platform).
type Platform = oci.Platform

// Filter keeps the images whose platform matches (oci.Filter).
type Filter = oci.Filter

// ParsePlatforms reads os/arch[/variant] values into a filter.
func ParsePlatforms(ps []string) (Filter, error) { return oci.ParsePlatforms(ps) }

// ParseFilter reads --os and --arch values: repeatable, comma-separated,
// `os:osversion` and `arch:variant`.
func ParseFilter(oses, arches []string) (Filter, error) { return oci.ParseFilter(oses, arches) }

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
		return nil, 0, oci.Permanent(fmt.Errorf("parsing index: %w", err))
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(top["manifests"], &entries); err != nil {
		return nil, 0, oci.Permanent(fmt.Errorf("parsing index manifests: %w", err))
	}
	changed := false
	var keep []json.RawMessage
	for _, e := range entries {
		var d oci.Entry
		if err := json.Unmarshal(e, &d); err != nil {
			return nil, 0, oci.Permanent(fmt.Errorf("parsing index entry: %w", err))
		}
		if !oci.ValidDigest(d.Digest) {
			return nil, 0, oci.Permanent(fmt.Errorf("index lists a child with the digest %q: %w", oci.Clip(d.Digest), oci.ErrInvalidReference))
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
			if dg := oci.Digest(nout); dg != d.Digest {
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
	m, err := oci.ParseImage(raw)
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

type manifestBytes struct {
	raw       []byte
	mediaType types.MediaType
}
