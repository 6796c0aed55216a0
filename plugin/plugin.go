// Package plugin holds what makes one binary answer to three names: the
// personality read from argv[0], the Docker CLI plugin protocol (metadata,
// Docker's global flags before the plugin name) and kubectl's plugin naming.
// It has no engine code.
package plugin

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Kind is how the binary was invoked.
type Kind int

const (
	Standalone      Kind = iota // imagesync
	Docker                      // docker-sync, run by the Docker CLI as `docker sync`
	Kubectl                     // kubectl-imagesync, run by kubectl as `kubectl imagesync`
	KubectlComplete             // kubectl_complete-imagesync: kubectl asking for completions
)

// Binary names of the three personalities (without .exe).
const (
	StandaloneBinary      = "imagesync"
	DockerBinary          = "docker-sync"
	KubectlBinary         = "kubectl-imagesync"
	KubectlCompleteBinary = "kubectl_complete-imagesync"
)

// Personality is what the binary calls itself in help and usage.
type Personality struct {
	Kind Kind
	Name string // "imagesync", "docker sync", "kubectl imagesync"
}

// Detect reads the personality from argv[0]: docker-sync[.exe],
// kubectl-imagesync[.exe], kubectl_complete-imagesync[.exe], else imagesync.
func Detect(argv0 string) Personality {
	base := argv0 // both separators, whatever the OS the path came from
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	base = strings.ToLower(base)
	base = strings.TrimSuffix(base, ".exe")
	switch base {
	case DockerBinary:
		return Personality{Kind: Docker, Name: "docker sync"}
	case KubectlBinary:
		return Personality{Kind: Kubectl, Name: "kubectl imagesync"}
	case KubectlCompleteBinary:
		return Personality{Kind: KubectlComplete, Name: "kubectl imagesync"}
	}
	return Personality{Kind: Standalone, Name: "imagesync"}
}

// MetadataCommand is the subcommand the Docker CLI runs to list plugins.
const MetadataCommand = "docker-cli-plugin-metadata"

// CompleteCommand is cobra's hidden completion request, which the Docker
// CLI and kubectl send to plugins.
const CompleteCommand = "__complete"

// Metadata is the Docker CLI plugin metadata (schema 0.1.0).
type Metadata struct {
	SchemaVersion    string `json:"SchemaVersion"`
	Vendor           string `json:"Vendor"`
	Version          string `json:"Version,omitempty"`
	ShortDescription string `json:"ShortDescription"`
	URL              string `json:"URL,omitempty"`
}

// DockerMetadata is the JSON `docker-sync docker-cli-plugin-metadata` prints.
func DockerMetadata(version string) []byte {
	b, _ := json.MarshalIndent(Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "imagesync",
		Version:          version,
		ShortDescription: "Copy container images between registries, many to many",
		URL:              "https://github.com/imagesync/imagesync",
	}, "", "  ")
	return append(b, '\n')
}

// DockerArgs is a Docker CLI invocation of the plugin taken apart.
type DockerArgs struct {
	ConfigDir string   // docker's --config DIR
	Debug     bool     // docker's -D/--debug
	Args      []string // what follows the plugin name
	Help      bool     // `docker help sync`
}

// dockerValueFlags are the Docker CLI's global flags that take a value.
var dockerValueFlags = map[string]bool{
	"--config": true, "-c": true, "--context": true, "-H": true, "--host": true,
	"-l": true, "--log-level": true, "--tlscacert": true, "--tlscert": true, "--tlskey": true,
}

// dockerBoolFlags are the Docker CLI's global flags without a value.
var dockerBoolFlags = map[string]bool{
	"-D": true, "--debug": true, "--tls": true, "--tlsverify": true,
}

// SplitDockerArgs takes the arguments the Docker CLI runs a plugin with —
// its whole command line: global flags, then the plugin name, then the
// plugin's own arguments — and returns the parts imagesync needs.
func SplitDockerArgs(args []string, name string) (DockerArgs, error) {
	var d DockerArgs
	for i := 0; i < len(args); i++ {
		a := args[i]
		flag, value, hasValue := strings.Cut(a, "=")
		switch {
		case a == name:
			d.Args = append([]string(nil), args[i+1:]...)
			return d, nil
		case a == "help" && i+1 < len(args) && args[i+1] == name:
			d.Help = true
			d.Args = append([]string(nil), args[i+2:]...)
			return d, nil
		case dockerValueFlags[flag]:
			if !hasValue {
				if i+1 >= len(args) {
					return d, fmt.Errorf("docker flag %s needs a value", flag)
				}
				i++
				value = args[i]
			}
			if flag == "--config" {
				d.ConfigDir = value
			}
		case dockerBoolFlags[flag]:
			if flag == "-D" || flag == "--debug" {
				d.Debug = !hasValue || value == "true"
			}
		case strings.HasPrefix(a, "-"):
			return d, fmt.Errorf("unknown docker flag %s before %q", a, name)
		default:
			return d, fmt.Errorf("expected the plugin name %q, got %q", name, a)
		}
	}
	// Run directly (not through docker): no plugin name, all ours.
	return DockerArgs{Args: args}, nil
}
