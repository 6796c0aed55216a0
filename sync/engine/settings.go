package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

// Platform modes (rules.Rule.PlatformMode).
const (
	ModeRewrite   = "rewrite"
	ModeKeepIndex = "keep-index"
)

// unitSettings are what a rule decides about how its images are copied:
// jobs of one source with different settings are separate units.
type unitSettings struct {
	filter    Filter
	keepIndex bool // platform-mode keep-index
	referrers *rules.Referrers
}

// settingsFor returns the settings of a rule's jobs: its own platforms
// replace the run's --os/--arch filter.
func (e *Engine) settingsFor(r *rules.Rule) unitSettings {
	s := unitSettings{filter: e.opt.Filter}
	if r == nil {
		return s
	}
	if r.Platforms != nil {
		f, err := ParsePlatforms(r.Platforms)
		if err == nil { // validated when the rule was loaded
			s.filter = f
		}
	}
	s.keepIndex = r.PlatformMode == ModeKeepIndex
	s.referrers = r.Referrers
	return s
}

// filterKey is what the ledger records about the filter: a destination
// written under another filter (or mode) is not in sync.
func (s unitSettings) filterKey() string {
	k := s.filter.String()
	if s.keepIndex && k != "" {
		k += " mode=keep-index"
	}
	return k
}

func (s unitSettings) key() string {
	k := s.filterKey()
	if s.referrers != nil {
		k += "\x00referrers=" + strings.Join(s.referrers.ArtifactTypes, ",")
	}
	return k
}

// sparseChildren returns the digests of the children (at any depth) of an
// index that the filter drops, for platform-mode keep-index: the original
// index is pushed and only the kept children are copied.
func sparseChildren(ctx context.Context, src Store, raw []byte, f Filter, skip map[string]bool) (kept int, err error) {
	return sparseWalk(ctx, src, raw, f, skip, map[string]int{})
}

// sparseWalk is sparseChildren with the nested indexes already counted
// (each read and counted once, however often it is listed).
func sparseWalk(ctx context.Context, src Store, raw []byte, f Filter, skip map[string]bool, done map[string]int) (kept int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, context.Cause(ctx)
	}
	var idx struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return 0, oci.Permanent(fmt.Errorf("parsing index: %w", err))
	}
	for _, e := range idx.Manifests {
		var d oci.Entry
		if err := json.Unmarshal(e, &d); err != nil {
			return 0, oci.Permanent(fmt.Errorf("parsing index entry: %w", err))
		}
		if d.MediaType.IsIndex() && d.Platform == nil {
			ctx, err := deeper(ctx, d.Digest)
			if err != nil {
				return 0, err
			}
			n, ok := done[d.Digest]
			if !ok {
				if len(done) >= maxManifests {
					return 0, errTooManyManifests
				}
				nested, _, err := src.GetManifest(ctx, d.Digest)
				if err != nil {
					return 0, fmt.Errorf("nested index %s: %w", d.Digest, err)
				}
				if n, err = sparseWalk(ctx, src, nested, f, skip, done); err != nil {
					return 0, err
				}
				done[d.Digest] = n
			}
			if n == 0 {
				skip[d.Digest] = true
			}
			kept += n
			continue
		}
		if f.Match(d.Platform) {
			kept++
		} else {
			skip[d.Digest] = true
		}
	}
	return kept, nil
}

// sparseRefused explains a registry refusing an index whose children are
// missing (platform-mode keep-index).
func sparseRefused(err error) error {
	var re *client.Error
	if errors.As(err, &re) && (re.HasCode("MANIFEST_BLOB_UNKNOWN") || re.HasCode("MANIFEST_INVALID")) {
		return oci.Permanent(fmt.Errorf("%w (platform-mode keep-index: this registry refuses an index whose filtered-out children are missing; use platform-mode rewrite, or a registry that accepts sparse indexes, e.g. distribution 3 with validation.manifests.indexes.platforms: none)", err))
	}
	return err
}
