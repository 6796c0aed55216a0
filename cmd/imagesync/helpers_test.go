package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs imagesync in-process with its own environment.
func runCLI(t *testing.T, envVars map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) {
		if v, ok := envVars[k]; ok {
			return v, ok
		}
		switch k {
		case "IMAGESYNC_LEDGER": // never the user's ledger: one per test
			return testLedger(t), true
		case "HOME": // never the user's ~/.docker
			return filepath.Dir(testLedger(t)), true
		}
		return "", false
	}
	code := run(context.Background(), append([]string{"imagesync"}, args...), env{lookup: lookup}, &out, &errb)
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	t.Logf("imagesync %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, r.stdout, r.stderr)
	return r
}

// writeFile writes content to name in dir and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	ledgersMu sync.Mutex
	ledgers   = map[*testing.T]string{}
)

// testLedger is the ledger every run of one test shares.
func testLedger(t *testing.T) string {
	ledgersMu.Lock()
	defer ledgersMu.Unlock()
	if p, ok := ledgers[t]; ok {
		return p
	}
	p := filepath.Join(t.TempDir(), "ledger.jsonl")
	ledgers[t] = p
	t.Cleanup(func() { ledgersMu.Lock(); delete(ledgers, t); ledgersMu.Unlock() })
	return p
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
