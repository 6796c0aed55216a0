package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func TestSplitShortValues(t *testing.T) {
	var cli CLI
	parser, err := kong.New(&cli, kong.NamedMapper("imagesformat", imagesFormatMapper))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want []string }{
		{[]string{"-p=6", "-r=3"}, []string{"-p", "6", "-r", "3"}},
		{[]string{"plan", "-o=json", "-q"}, []string{"plan", "-o", "json", "-q"}},
		{[]string{"-p", "6", "--proc=7", "-p7"}, []string{"-p", "6", "--proc=7", "-p7"}},
		{[]string{"-q=1"}, []string{"-q=1"}}, // a bool flag: kong says what is wrong
		{[]string{"-x=1", "--", "-p=6"}, []string{"-x=1", "--", "-p=6"}},
		{[]string{"-p="}, []string{"-p", ""}},
	}
	for _, tc := range tests {
		if got := splitShortValues(parser.Model, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%q → %q, want %q", tc.in, got, tc.want)
		}
	}
}

// image-syncer's spellings parse to what they mean.
func TestImageSyncerSpellings(t *testing.T) {
	tests := []struct {
		args           []string
		proc, retries  int
		format, output string
	}{
		{[]string{"--images", "i.yaml", "-p=6", "-r=3"}, 6, 3, "yaml", "text"},
		{[]string{"--images", "i.yaml", "-p", "6", "-r", "3", "--output-images-format", "yml"}, 6, 3, "yaml", "text"},
		{[]string{"sync", "--images", "i.yaml", "--output-images-format=YML", "-o=json"}, 5, 2, "yaml", "json"},
		{[]string{"--images", "i.yaml", "--output-images-format", "JSON", "-p6"}, 6, 2, "json", "text"},
	}
	for _, tc := range tests {
		var cli CLI
		parser, err := kong.New(&cli, kong.NamedMapper("imagesformat", imagesFormatMapper))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parser.Parse(splitShortValues(parser.Model, tc.args)); err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		s := cli.Sync
		if s.Proc != tc.proc || s.Retries != tc.retries || s.OutputImagesFormat != tc.format || s.Output != tc.output {
			t.Errorf("%q: proc %d retries %d format %q output %q; want %d %d %q %q", tc.args, s.Proc, s.Retries, s.OutputImagesFormat, s.Output, tc.proc, tc.retries, tc.format, tc.output)
		}
	}
	// Through run: exit 2 naming the flag, for a bad format or a bad -p=.
	for _, args := range [][]string{{"--images", "i.yaml", "--output-images-format", "xml"}, {"--images", "i.yaml", "-p=six"}} {
		if r := runCLI(t, nil, args...); r.code != exitUsage || !(strings.Contains(r.stderr, "output-images-format") || strings.Contains(r.stderr, "--proc")) {
			t.Errorf("%q: exit %d, want %d naming the flag", args, r.code, exitUsage)
		}
	}
}
