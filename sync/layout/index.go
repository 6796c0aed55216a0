package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/imagesync/imagesync/oci"
)

// descriptor is an index.json entry as the layout reads and writes it.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// entry is one index.json entry: its bytes (kept as they were) and the
// fields the layout uses.
type entry struct {
	raw  json.RawMessage
	desc descriptor
	name string
}

// indexDoc is index.json: every top-level field is kept as it was, the
// manifests array is the entries.
type indexDoc struct {
	top     map[string]json.RawMessage
	entries []*entry
	byName  map[string]*entry
}

func newIndex() *indexDoc {
	return &indexDoc{top: map[string]json.RawMessage{
		"schemaVersion": json.RawMessage(`2`),
		"mediaType":     json.RawMessage(`"` + string(oci.MediaOCIIndex) + `"`),
	}, byName: map[string]*entry{}}
}

func parseIndex(b []byte) (*indexDoc, error) {
	idx := &indexDoc{byName: map[string]*entry{}}
	if err := json.Unmarshal(b, &idx.top); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if idx.top == nil {
		return nil, errors.New("not a JSON object")
	}
	var raws []json.RawMessage
	if m, ok := idx.top["manifests"]; ok && string(m) != "null" {
		if err := json.Unmarshal(m, &raws); err != nil {
			return nil, fmt.Errorf("manifests: %w", err)
		}
	}
	for i, raw := range raws {
		var d descriptor
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("manifests[%d]: %w", i, err)
		}
		if d.Digest == "" {
			return nil, fmt.Errorf("manifests[%d]: no digest", i)
		}
		e := &entry{raw: raw, desc: d, name: d.Annotations[AnnotationName]}
		idx.entries = append(idx.entries, e)
		if e.name != "" {
			idx.byName[e.name] = e // a later entry of the same name wins
		}
	}
	return idx, nil
}

func (x *indexDoc) get(name string) *entry { return x.byName[name] }

// set points name at desc: the entry of that name is replaced in place, or
// a new one appended.
func (x *indexDoc) set(name string, raw json.RawMessage, desc descriptor) {
	if e := x.byName[name]; e != nil {
		e.raw, e.desc = raw, desc
		return
	}
	e := &entry{raw: raw, desc: desc, name: name}
	x.entries = append(x.entries, e)
	x.byName[name] = e
}

// lists reports whether an entry (named or not) holds digest.
func (x *indexDoc) lists(digest string) bool {
	for _, e := range x.entries {
		if e.desc.Digest == digest {
			return true
		}
	}
	return false
}

// addUnnamed appends an entry without a name (a referrer), unless one for
// its digest is there already.
func (x *indexDoc) addUnnamed(raw json.RawMessage, desc descriptor) {
	if !x.lists(desc.Digest) {
		x.entries = append(x.entries, &entry{raw: raw, desc: desc})
	}
}

func (x *indexDoc) clone() *indexDoc {
	c := &indexDoc{top: map[string]json.RawMessage{}, byName: map[string]*entry{}}
	for k, v := range x.top {
		c.top[k] = v
	}
	for _, e := range x.entries {
		ce := *e
		c.entries = append(c.entries, &ce)
		if ce.name != "" {
			c.byName[ce.name] = &ce
		}
	}
	return c
}

// encode writes index.json with its other fields as they were.
func (x *indexDoc) encode() []byte {
	top := map[string]json.RawMessage{}
	for k, v := range x.top {
		top[k] = v
	}
	if _, ok := top["schemaVersion"]; !ok {
		top["schemaVersion"] = json.RawMessage(`2`)
	}
	raws := make([]json.RawMessage, 0, len(x.entries))
	for _, e := range x.entries {
		raws = append(raws, e.raw)
	}
	top["manifests"], _ = json.Marshal(raws)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(top)
	return buf.Bytes()
}

// references lists what a manifest, an index or an image read leniently,
// points at inside a layout: its child manifests, and its config and the
// layers it does not fetch from elsewhere (no urls).
func references(raw []byte) (children, blobs []string, err error) {
	var m struct {
		Manifests []struct{ Digest string } `json:"manifests"`
		Config    *struct{ Digest string }  `json:"config"`
		Layers    []struct {
			Digest string   `json:"digest"`
			URLs   []string `json:"urls"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, err
	}
	for _, c := range m.Manifests {
		children = append(children, c.Digest)
	}
	if m.Config != nil {
		blobs = append(blobs, m.Config.Digest)
	}
	for _, b := range m.Layers {
		if len(b.URLs) == 0 {
			blobs = append(blobs, b.Digest)
		}
	}
	return children, blobs, nil
}
