package readme

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fence = "```"

func texts(names []Name, k Kind) []string {
	out := []string{}
	for _, n := range names {
		if n.Kind == k {
			out = append(out, n.Text)
		}
	}
	return out
}

func TestNames(t *testing.T) {
	tests := []struct {
		name string
		md   string
		kind Kind
		want []string
	}{
		{
			name: "flags in code spans and blocks, not in prose",
			md: "Use `--proc N` or `-p`; plain --retries is prose.\n\n" +
				fence + "sh\nimagesync sync --auth a.json -q --os=linux --arch amd64,arm:v7\n" + fence + "\n" +
				"| `--ledger FILE`, `--no-ledger` | x |\n",
			kind: Flag,
			want: []string{"--proc", "-p", "--auth", "-q", "--os", "--arch", "--ledger", "--no-ledger"},
		},
		{
			name: "not flags: dashes inside words, long single-dash words, a bare --",
			md: "`docker-registry`, `kubectl_complete-imagesync`, `different-digest`, `a - b`, `--`\n\n" +
				fence + "powershell\nNew-Item -ItemType Directory -Force x\n" + fence + "\n",
			kind: Flag,
			want: []string{},
		},
		{
			name: "a flag inside an escaped-pipe table cell",
			md:   "| flag | meaning |\n|---|---|\n| `--output-images-format json\\|yaml` | x |\n",
			kind: Flag,
			want: []string{"--output-images-format"},
		},
		{
			name: "code span broken across lines",
			md:   "see `verify\n--offline` here\n",
			kind: Flag,
			want: []string{"--offline"},
		},
		{
			name: "subcommands after imagesync and docker's plugin name",
			md: fence + "sh\nimagesync plan --images x\nimagesync --auth a.json   # sync is the default\n" +
				"docker --config DIR sync verify\nsource <(imagesync completion bash)\n./bin/imagesync version\n" +
				"make demo   # builds imagesync, starts registries\n" + fence + "\n" +
				"`kubectl imagesync plan|sync|export` and `imagesync images.yaml` and `docker sync …`\n",
			kind: Subcommand,
			want: []string{"plan", "verify", "completion", "version", "sync", "export"},
		},
		{
			name: "no subcommands from YAML or JSON",
			md:   fence + "yaml\nimagesync plan: x\n" + fence + "\n",
			kind: Subcommand,
			want: []string{},
		},
		{
			name: "exit codes from the exit-code table only",
			md: "## Exit codes\n\n| code | meaning |\n|---|---|\n| 0 | ok |\n| `4` | plan |\n| 130 | interrupted |\n\n" +
				"## Limits\n\n| n | x |\n|---|---|\n| 5 | other |\n\n`plan` exits 7 in prose.\n",
			kind: ExitCode,
			want: []string{"0", "4", "130"},
		},
		{
			name: "keys of YAML and JSON blocks, flow mappings included; image references are not keys",
			md: fence + "yaml\ndefaults:\n  proc: 8\nregistries:\n  harbor.example.com: {insecure: false, max-conns: 4}\n" +
				"docker.io/library/nginx:1.27: harbor.example.com/mirror/nginx\n" + fence + "\n\n" +
				fence + "json\n{\"jobs\": [{\"source\": \"a\"}]}\n" + fence + "\n",
			kind: Key,
			want: []string{"defaults", "proc", "registries", "insecure", "max-conns", "jobs", "source"},
		},
		{
			name: "keys of a YAML snippet that does not parse",
			md:   fence + "yaml\nauth:\n  quay.io: …\n  - from: x\n    to: [y]\n  bad: : :\n" + fence + "\n",
			kind: Key,
			want: []string{"auth", "from", "to", "bad"},
		},
		{
			name: "keys of a here-document written to a YAML file, not of the shell around it",
			md: fence + "sh\ncat > auth.yaml <<'EOF'\nregistry.io:\n  username: u\n  password: p\nEOF\n" +
				"echo notakey: x\n" + fence + "\n",
			kind: Key,
			want: []string{"username", "password"},
		},
		{
			name: "keys of a key table, of key: spans and of spans named fields",
			md: "| key | meaning |\n|---|---|\n| `defaults.proc` | x |\n| `referrers: true` | y |\n\n" +
				"| source (key) | means |\n|---|---|\n| `reg/ns/repo:t` | tag |\n\n" +
				"A file with `auth:` and `images:`; `insecure: true` allows HTTP; the optional `ca`, `cert` and\n`key` fields name files. `sha256:…` is a digest and `copy` an action.\n",
			kind: Key,
			want: []string{"defaults.proc", "referrers", "auth", "images", "insecure", "ca", "cert", "key"},
		},
		{
			name: "upper-case names with an underscore, in code only",
			md:   "`DEFAULT_REGISTRY/DEFAULT_NAMESPACE/<repo>`, `${HARBOR_TOKEN}`, `DENIED`, `GOBIN`, NO_COLOR in prose\n",
			kind: UpperName,
			want: []string{"DEFAULT_REGISTRY", "DEFAULT_NAMESPACE", "HARBOR_TOKEN"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := texts(Names(tt.md), tt.kind); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %q, want %q", tt.kind, got, tt.want)
			}
		})
	}
}

func TestNamesLines(t *testing.T) {
	md := "# t\n\ntext `--a`\n\n" + fence + "sh\n\nimagesync plan --b\n" + fence + "\n| code | x |\n|---|---|\n| 3 | y |\n"
	got := fmt.Sprint(Names(md))
	want := "[{flag --a 3} {flag --b 7} {subcommand plan 7} {exit code 3 11}]"
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestMissing(t *testing.T) {
	en := "# x\n\n" +
		fence + "sh\nimagesync plan --proc 8 --images images.yaml\nimagesync verify --deep\n" + fence + "\n\n" +
		"`--output-failed-images FILE` and `-q`; env `IMAGESYNC_LEDGER`.\n\n" +
		fence + "yaml\nquay.io:\n  username: u\n  insecure: true\n" + fence + "\n\n" +
		"## Exit codes\n\n| code | meaning |\n|---|---|\n| 0 | ok |\n| 4 | changes |\n| 130 | interrupted |\n"
	complete := "# x\n\n" +
		fence + "sh\nimagesync plan --proc 8 --images images.yaml\nimagesync verify --deep\n" + fence + "\n\n" +
		"`--output-failed-images FILE` 与 `-q`；环境变量 `IMAGESYNC_LEDGER`。\n\n" +
		fence + "yaml\nquay.io:\n  username: u\n  insecure: true\n" + fence + "\n\n" +
		"## 退出码\n\n| 退出码 | 含义 |\n|---|---|\n| 0 | 成功 |\n| 4 | 有变更 |\n| 130 | 被中断 |\n"
	if m := Missing(en, complete); len(m) != 0 {
		t.Fatalf("a complete translation is missing %v", m)
	}
	// The same translation with one name of each kind dropped, and near misses left in place:
	// --proc-max is not --proc, --deep in prose is not code, 130 outside a table is not the row.
	partial := "# x\n\n" +
		fence + "sh\nimagesync plan --proc-max 8 --images images.yaml\n" + fence + "\n\n" +
		"--deep 与 verify 130。`--output-failed-images FILE` 与 `-q`；环境变量 IMAGESYNC_LEDGER。\n\n" +
		fence + "yaml\nquay.io:\n  username: u\n" + fence + "\n\n" +
		"## 退出码\n\n| 退出码 | 含义 |\n|---|---|\n| 0 | 成功 |\n| 4 | 有变更 |\n"
	var got []string
	for _, n := range Missing(en, partial) {
		got = append(got, fmt.Sprintf("%s %s (line %d)", n.Kind, n.Text, n.Line))
	}
	want := []string{
		"flag --proc (line 4)",
		"flag --deep (line 5)",
		"subcommand verify (line 5)",
		"environment variable or error code IMAGESYNC_LEDGER (line 8)",
		"config key insecure (line 13)",
		"exit code 130 (line 22)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Missing:\n got  %q\n want %q", got, want)
	}
}

// TestChineseREADME checks the repository's README.zh-CN.md against README.md: linked both ways,
// the same number of sections, and every flag, subcommand, exit code, config key and upper-case
// name of the English README present in the Chinese one.
func TestChineseREADME(t *testing.T) {
	root := filepath.Join("..", "..")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	en, zh := read("README.md"), read("README.zh-CN.md")

	// The extraction must keep finding something of each kind in the English README; if it
	// stops (a parsing regression), the comparison below would pass vacuously.
	names := Names(en)
	for _, k := range []Kind{Flag, Subcommand, ExitCode, Key, UpperName} {
		if len(texts(names, k)) == 0 {
			t.Errorf("found no %s in README.md: the extraction is broken", k)
		}
	}

	if !strings.Contains(en, "(README.zh-CN.md)") {
		t.Errorf("README.md does not link to README.zh-CN.md")
	}
	if !strings.Contains(zh, "(README.md)") {
		t.Errorf("README.zh-CN.md does not link back to README.md")
	}

	for level := 2; level <= 3; level++ {
		e, z := headings(en, level), headings(zh, level)
		if len(e) != len(z) {
			t.Errorf("README.md has %d level-%d sections, README.zh-CN.md %d: translate the new sections\n  README.md:       %s\n  README.zh-CN.md: %s",
				len(e), level, len(z), strings.Join(e, " · "), strings.Join(z, " · "))
		}
	}

	if missing := Missing(en, zh); len(missing) > 0 {
		var b strings.Builder
		for _, n := range missing {
			fmt.Fprintf(&b, "\n  %s %s (README.md line %d)", n.Kind, n.Text, n.Line)
		}
		t.Errorf("README.zh-CN.md lacks %d names that README.md mentions; translate the README.md change into README.zh-CN.md in the same commit (code, flags and keys stay as they are):%s",
			len(missing), b.String())
	}
}

func headings(md string, level int) []string {
	var out []string
	for _, h := range parse(md).headings {
		if h.level == level {
			out = append(out, h.text)
		}
	}
	return out
}
