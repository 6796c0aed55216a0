package main

// Detailed help of the commands: what they do (Help, kong's detailed
// help, printed under the usage line), then real invocations for each of
// the three names and the exit codes (commandExamples, printed last, as
// kubectl does).

// Help implements kong's detailed help.
func (SyncCmd) Help() string {
	return `Reads image-syncer's files unchanged; SRC DST copies one image or repository without a file.`
}

// Help implements kong's detailed help.
func (PlanCmd) Help() string {
	return `Decides every job as sync would — copy, update, skip, filtered or error,
with the bytes a sync would upload — and writes nothing anywhere.`
}

// Help implements kong's detailed help.
func (VerifyCmd) Help() string {
	return `Checks that every destination holds the source's digest, every child
manifest and every blob; --deep downloads and re-hashes the blobs; --offline
compares with the ledger instead of the source. A destination found broken is
marked in the ledger; the next sync repairs it.`
}

// commandExamples are printed at the end of a command's help.
var commandExamples = map[string]string{
	"sync": `Examples:
  imagesync quay.io/prometheus/node-exporter:v1.8.0 registry.example.com/mirror/node-exporter
  imagesync --auth auth.json --images images.json --proc 8 --retries 2
  imagesync sync --images images.yaml --arch amd64,arm64 --output-failed-images failed.yaml
  imagesync --config config.yaml                     # legacy file with auth: and images:
  imagesync -f imagesync.yaml -o json > report.json
  imagesync --images export.yaml                     # rules into oci:DIR or oci-archive:FILE (air gap)
  imagesync --images import.yaml                     # oci:DIR: registry/prefix, paths kept
  docker sync --images images.yaml                   # credentials from docker login
  docker sync --docker-config ~/.docker-ci --images images.yaml
  kubectl imagesync sync --images images.yaml

Exit codes: 0 all done, 1 some jobs failed, 2 bad usage or configuration,
3 every job failed, 130 interrupted.`,
	"plan": `Examples:
  imagesync plan quay.io/coreos/etcd:v3.5.0 registry.example.com/mirror/etcd
  imagesync plan --auth auth.json --images images.json
  imagesync plan --images images.yaml -o json | jq '.summary'
  imagesync plan --images images.yaml --detailed-exitcode || echo "work to do"
  docker sync plan --images images.yaml
  kubectl imagesync plan --images images.yaml

Exit codes: 0 (4 with --detailed-exitcode when something is to copy or
update), 1 some jobs could not be decided, 2 bad usage, 3 none could.`,
	"verify": `Examples:
  imagesync verify quay.io/coreos/etcd:v3.5.0 registry.example.com/mirror/etcd
  imagesync verify --images images.yaml
  imagesync verify --images images.yaml --deep -o json
  imagesync verify --images images.yaml --offline    # air-gapped mirror
  imagesync verify --images export.yaml --deep       # re-hashes an OCI layout's blobs
  docker sync verify --images images.yaml
  kubectl imagesync verify --images images.yaml

Exit codes: 0 everything matches, 1 something differs or could not be
checked, 2 bad usage.`,
}

// globalFlagHelp is the one-line help of each global flag in the short
// "Global flags" block of a command's help (imagesync --help has them in full).
var globalFlagHelp = map[string]string{
	"help":        "Show this help.",
	"quiet":       "Print errors and the summary only.",
	"debug":       "Log every registry request (never credentials).",
	"log-format":  "Log format on stderr: text or json.",
	"log":         "Logs and per-image lines to FILE instead of stderr.",
	"no-progress": "No progress bar: periodic plain lines.",
	"version":     "Print the version and exit.",
}
