package engine

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/sync/rules"
)

func TestInvalidTagsReported(t *testing.T) {
	var logs strings.Builder
	e := &Engine{log: slog.New(slog.NewTextHandler(&logs, nil))}
	dst := []rules.Destination{{Registry: "dst.example.com", Repository: "a"}, {Registry: "dst.example.com", Repository: "b"}}
	all := &rules.Rule{Source: rules.Source{Registry: "src.example.com", Repository: "app", Kind: rules.AllTags}, Destinations: dst}
	re := &rules.Rule{Source: rules.Source{Registry: "src.example.com", Repository: "app", Kind: rules.TagRegex, Regex: regexp.MustCompile(`^v1`)}, Destinations: dst}
	bad := []string{"v1/../x", "x?y", "v1/../x"}
	if got := e.invalidTags(all, bad); len(got) != 4 {
		t.Errorf("all tags: %d failed jobs, want 2 tags × 2 destinations", len(got))
	}
	if got := e.invalidTags(re, bad); len(got) != 2 || !strings.Contains(got[0].Err.Error(), `"v1/../x"`) {
		t.Errorf("regex: %d failed jobs, want the one matching tag × 2 destinations", len(got))
	}
	if !strings.Contains(logs.String(), "registry=src.example.com") || !strings.Contains(logs.String(), `tag=x?y`) {
		t.Errorf("warnings:\n%s", logs.String())
	}
	// A flood is reported in bounded form.
	var flood []string
	for i := range 1000 {
		flood = append(flood, fmt.Sprintf("t%d/..", i))
	}
	logs.Reset()
	got := e.invalidTags(all, flood)
	if len(got) != 2*(maxInvalidTagReports+1) || !strings.Contains(got[len(got)-1].Err.Error(), "900 more") {
		t.Errorf("flood: %d failed jobs", len(got))
	}
	if n := strings.Count(logs.String(), "\n"); n != maxInvalidTagReports+1 {
		t.Errorf("flood: %d warnings", n)
	}
}
