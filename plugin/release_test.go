package plugin

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The krew archive ships kubectl's completion helper next to the plugin,
// and krew.yaml installs it: without it `kubectl imagesync <TAB>` completes
// nothing.
func TestKrewShipsTheCompletionHelper(t *testing.T) {
	raw, err := os.ReadFile("../krew.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Spec struct {
			Platforms []struct {
				Selector struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"selector"`
				Bin   string `yaml:"bin"`
				Files []struct {
					From string `yaml:"from"`
				} `yaml:"files"`
			} `yaml:"platforms"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Spec.Platforms) != 6 {
		t.Fatalf("%d platforms", len(m.Spec.Platforms))
	}
	for _, p := range m.Spec.Platforms {
		exe := ""
		if p.Selector.MatchLabels["os"] == "windows" {
			exe = ".exe"
		}
		var from []string
		for _, f := range p.Files {
			from = append(from, f.From)
		}
		if p.Bin != KubectlBinary+exe || !slices.Contains(from, KubectlBinary+exe) || !slices.Contains(from, KubectlCompleteBinary+exe) {
			t.Errorf("%v: bin %s, files %v", p.Selector.MatchLabels, p.Bin, from)
		}
	}

	gr, err := os.ReadFile("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Builds []struct {
			ID     string `yaml:"id"`
			Binary string `yaml:"binary"`
		} `yaml:"builds"`
		Archives []struct {
			ID  string   `yaml:"id"`
			IDs []string `yaml:"ids"`
		} `yaml:"archives"`
	}
	if err := yaml.Unmarshal(gr, &g); err != nil {
		t.Fatal(err)
	}
	built := false
	for _, b := range g.Builds {
		built = built || b.Binary == KubectlCompleteBinary
	}
	shipped := false
	for _, a := range g.Archives {
		if a.ID == KubectlBinary {
			shipped = slices.Contains(a.IDs, KubectlBinary) && slices.Contains(a.IDs, KubectlCompleteBinary)
		}
	}
	if !built || !shipped {
		t.Errorf(".goreleaser.yaml: %s built %v, in the %s archive %v", KubectlCompleteBinary, built, KubectlBinary, shipped)
	}
	if !strings.Contains(string(raw), "kubectl_complete-imagesync") {
		t.Error("krew.yaml caveats do not say where the completion helper is")
	}
}
