package plugin

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestDetect(t *testing.T) {
	for argv0, want := range map[string]Personality{
		"imagesync":                                      {Standalone, "imagesync"},
		"/usr/local/bin/imagesync":                       {Standalone, "imagesync"},
		"/home/u/.docker/cli-plugins/docker-sync":        {Docker, "docker sync"},
		`C:\Users\u\.docker\cli-plugins\docker-sync.exe`: {Docker, "docker sync"},
		"kubectl-imagesync":                              {Kubectl, "kubectl imagesync"},
		"KUBECTL-IMAGESYNC.EXE":                          {Kubectl, "kubectl imagesync"},
		"kubectl_complete-imagesync":                     {KubectlComplete, "kubectl imagesync"},
		"imagesync-dev":                                  {Standalone, "imagesync"},
	} {
		if got := Detect(argv0); got != want {
			t.Errorf("Detect(%q) = %+v, want %+v", argv0, got, want)
		}
	}
}

func TestSplitDockerArgs(t *testing.T) {
	tests := []struct {
		in   []string
		want DockerArgs
		err  bool
	}{
		{in: []string{"sync", "--images", "x.yaml"}, want: DockerArgs{Args: []string{"--images", "x.yaml"}}},
		{in: []string{"--config", "/tmp/d", "sync", "plan", "-o", "json"}, want: DockerArgs{ConfigDir: "/tmp/d", Args: []string{"plan", "-o", "json"}}},
		{in: []string{"--config=/tmp/d", "-D", "--context", "x", "-H", "unix:///s", "--tls", "sync"}, want: DockerArgs{ConfigDir: "/tmp/d", Debug: true, Args: []string{}}},
		{in: []string{"-l", "debug", "sync", "sync", "--force"}, want: DockerArgs{Args: []string{"sync", "--force"}}},
		{in: []string{"help", "sync"}, want: DockerArgs{Help: true, Args: []string{}}},
		{in: []string{"--images", "x.yaml"}, want: DockerArgs{Args: []string{"--images", "x.yaml"}}, err: true},
		{in: []string{"--config"}, err: true},
		{in: []string{"--bogus", "sync"}, err: true},
	}
	for _, tc := range tests {
		got, err := SplitDockerArgs(tc.in, "sync")
		if tc.err != (err != nil) {
			t.Errorf("%v: err = %v", tc.in, err)
			continue
		}
		if err != nil {
			continue
		}
		if got.ConfigDir != tc.want.ConfigDir || got.Debug != tc.want.Debug || got.Help != tc.want.Help || !slices.Equal(got.Args, tc.want.Args) {
			t.Errorf("%v: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestDockerMetadata(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal(DockerMetadata("1.2.3"), &m); err != nil {
		t.Fatal(err)
	}
	if m["SchemaVersion"] != "0.1.0" || m["Vendor"] == "" || m["Version"] != "1.2.3" || m["ShortDescription"] == "" || m["URL"] == "" {
		t.Fatalf("metadata %v", m)
	}
}
