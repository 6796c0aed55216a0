package report

import (
	"errors"
	"fmt"
	"testing"

	"github.com/imagesync/imagesync/internal/cfgfile"
)

func TestSkippedRules(t *testing.T) {
	placed := &cfgfile.Error{File: "images.yaml", Line: 4, Key: "r.io/a:1", Msg: "duplicate key"}
	got := SkippedRules([]error{placed, fmt.Errorf("wrapped: %w", placed), errors.New("no place")})
	want := []SkippedRule{
		{File: "images.yaml", Line: 4, Key: "r.io/a:1", Error: "duplicate key"},
		{File: "images.yaml", Line: 4, Key: "r.io/a:1", Error: "duplicate key"},
		{Error: "no place"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if SkippedRules(nil) != nil {
		t.Error("no skipped rules must leave the field out of -o json")
	}
}
