//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// Two unrelated syncs at once on the one default ledger (issue #23): both
// run to the end and both record what they copied; ledger stats and
// ledger export, run while they copy, answer at once. The real binary,
// against real registries, a slow source so that the runs overlap.
func TestTwoSyncsShareTheLedger(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		slow := throttled(t, src.Host, 256<<10)
		want := map[string]string{} // destination reference → digest
		dir := t.TempDir()
		var runs [2]*exec.Cmd
		var stderr [2]strings.Builder
		done := make(chan int, 2)
		home := filepath.Dir(testLedger(t))
		for i, name := range []string{"team-a", "team-b"} {
			var rules strings.Builder
			for j := range 3 {
				repo := fmt.Sprintf("%s/app%d", name, j)
				d, _ := src.PushRandomImage(t, repo, "1", linuxAmd64, 1, 200<<10, j%2 == 0, int64(100*i+j))
				fmt.Fprintf(&rules, "%s/%s:1: %s/%s\n", slow, repo, dst.Host, repo)
				want[dst.Host+"/"+repo+":1"] = d
			}
			images := writeFile(t, dir, name+".yaml", rules.String())
			runs[i] = exec.Command(os.Args[0], "--images", images, "--proc", "1")
			runs[i].Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+home, "IMAGESYNC_LEDGER="+testLedger(t))
			runs[i].Stderr = &stderr[i]
		}
		for i, c := range runs {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { _ = c.Wait(); done <- i }()
		}
		// While both copy: the readers answer, and neither sync is refused.
		for _, args := range [][]string{{"ledger", "stats"}, {"ledger", "export"}} {
			if r := runBinary(t, dir, "imagesync", nil, args...); r.code != exitOK || strings.Contains(r.stderr, "in use") {
				t.Errorf("%v during two syncs: exit %d, %s", args, r.code, r.stderr)
			}
		}
		select {
		case i := <-done:
			t.Errorf("sync %d ended before the readers were done: the runs did not overlap\n%s", i, stderr[i].String())
			done <- i
		default:
		}
		for range runs {
			i := <-done
			t.Logf("sync %d → exit %d\n%s", i, runs[i].ProcessState.ExitCode(), stderr[i].String())
			if code := runs[i].ProcessState.ExitCode(); code != exitOK {
				t.Errorf("sync %d: exit %d, want 0", i, code)
			}
		}
		for ref, d := range want {
			repo, _, _ := strings.Cut(strings.TrimPrefix(ref, dst.Host+"/"), ":")
			assertDigest(t, dst, repo, "1", d)
		}
		// Both runs' facts are in the ledger.
		r := runBinary(t, dir, "imagesync", nil, "ledger", "export")
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var rec struct{ T, Dst, Digest string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("ledger export line %q: %v", line, err)
			}
			if rec.T == "m" {
				got[rec.Dst] = rec.Digest
			}
		}
		for ref, d := range want {
			if got[ref] != d {
				t.Errorf("the ledger has %s → %q, want %s", ref, got[ref], d)
			}
		}
	})
}
