package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/sync/rules"
)

// SchemaURL is the JSON schema of the native config file, named in the
// first line of every file the writer writes (editors validate with it).
const SchemaURL = "https://raw.githubusercontent.com/imagesync/imagesync/main/imagesync.schema.json"

// NativeFile is a native config file as the one writer writes it (convert,
// --from-cluster --write-rules): sync entries, and an auth file referred to
// by path (secrets are never copied into it).
type NativeFile struct {
	// Comments are written as "# " lines after the schema line.
	Comments []string
	AuthFile string
	Sync     []Entry
}

// Entry is one sync entry: a source as a rule key, and its destinations.
type Entry struct {
	From string
	To   []string
	// List writes To as a list even when it holds one destination (as the
	// file converted wrote it); else one destination is written as a string.
	List bool
}

type nativeEntry struct {
	From string `yaml:"from"`
	To   any    `yaml:"to"`
}

type nativeDoc struct {
	AuthFile string        `yaml:"auth-file,omitempty"`
	Sync     []nativeEntry `yaml:"sync"`
}

// Encode returns the file: the schema line, the comments, then the YAML
// (two-space indent).
func (f *NativeFile) Encode() ([]byte, error) {
	doc := nativeDoc{AuthFile: f.AuthFile, Sync: []nativeEntry{}}
	for _, e := range f.Sync {
		ne := nativeEntry{From: e.From, To: e.To}
		if len(e.To) == 1 && !e.List {
			ne.To = e.To[0]
		} else if e.To == nil {
			ne.To = []string{}
		}
		doc.Sync = append(doc.Sync, ne)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# yaml-language-server: $schema=%s\n", SchemaURL)
	for _, c := range f.Comments {
		for _, line := range strings.Split(c, "\n") {
			fmt.Fprintf(&buf, "# %s\n", line)
		}
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFile writes the file to path (mode 0644: it holds no secret).
func (f *NativeFile) WriteFile(path string) error {
	b, err := f.Encode()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Convert turns image-syncer's files into a native config file: legacy
// (--config, auth: and images: in one file) or images with an optional auth
// file. Each source and destination is kept as written ($VAR included), so
// the result means what the image-syncer files mean; the files are checked
// the way sync reads them first (nothing broken is converted), and the auth
// file is referred to as given on the command line, never copied.
func Convert(images, auth, legacy string, opt rules.Options) (*NativeFile, error) {
	var imagesNode *cfgfile.Node
	switch {
	case legacy != "":
		if images != "" || auth != "" {
			return nil, fmt.Errorf("--config holds auth: and images:: give it alone, or --images and --auth")
		}
		l, err := ReadLegacy(legacy, false)
		if err != nil {
			return nil, err
		}
		if !l.HasImages() {
			return nil, fmt.Errorf("%s: no images: key", legacy)
		}
		imagesNode = l.Images
		if l.HasAuth() {
			auth = legacy
		}
		images = legacy
	case images == "":
		return nil, fmt.Errorf("convert needs --images FILE (and --auth FILE), or --config FILE")
	default:
		n, err := cfgfile.Load(images)
		if err != nil {
			return nil, err
		}
		imagesNode = n
	}
	if _, err := rules.FromNode(images, imagesNode, opt); err != nil {
		return nil, err
	}
	f := &NativeFile{Comments: []string{fmt.Sprintf("Converted by `imagesync convert` from %s.", describeInputs(images, auth))}}
	if auth != "" {
		if _, err := LoadAuthOrLegacy(auth, opt.LookupEnv); err != nil {
			return nil, err
		}
		f.AuthFile = auth // as given (issue #23): a config file resolves it relative to itself
	}
	if imagesNode != nil && imagesNode.Kind == cfgfile.Map {
		for _, kv := range imagesNode.Map {
			e := Entry{From: kv.Key}
			if v := kv.Value; v.Kind == cfgfile.List {
				e.List = true
				for _, it := range v.List {
					e.To = append(e.To, it.Str)
				}
			} else {
				e.To = []string{v.Str}
			}
			f.Sync = append(f.Sync, e)
		}
	}
	return f, nil
}

func describeInputs(images, auth string) string {
	if auth == "" || auth == images {
		return filepath.Base(images)
	}
	return filepath.Base(images) + " and " + filepath.Base(auth)
}
