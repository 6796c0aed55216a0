package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
	"github.com/imagesync/imagesync/sync/report"
)

// seedShardPlan pushes 12 repositories of 4 tags; the first 3 are also
// copied to a second repository (backup/…), so one source read feeds two
// destination repositories. It returns the rule file and the expected
// digest of every destination repository:tag.
func seedShardPlan(t *testing.T, src *registrytest.Registry, dstHost string) (rulesText string, want map[string]string) {
	t.Helper()
	want = map[string]string{}
	var b strings.Builder
	for r := range 12 {
		repo := fmt.Sprintf("team/app%d", r)
		for tag := range 4 {
			d, _ := src.PushRandomImage(t, repo, fmt.Sprintf("v%d", tag), linuxAmd64, 2, 300, tag%2 == 0, int64(5000+10*r+tag))
			want[fmt.Sprintf("mirror/app%d:v%d", r, tag)] = d
			if r < 3 {
				want[fmt.Sprintf("backup/app%d:v%d", r, tag)] = d
			}
		}
		if r < 3 {
			fmt.Fprintf(&b, "%s/%s: [%s/mirror/app%d, %s/backup/app%d]\n", src.Host, repo, dstHost, r, dstHost, r)
		} else {
			fmt.Fprintf(&b, "%s/%s: %s/mirror/app%d\n", src.Host, repo, dstHost, r)
		}
	}
	return b.String(), want
}

// repoOf is the repository part of a destination reference.
func repoOf(ref string) string {
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i]
	}
	return ref
}

func TestShards(t *testing.T) {
	t.Parallel()
	// One registry kind: the sharding is the client's, and the registry
	// only holds what the shards wrote (on both kinds this was among make
	// test's costliest tests, for nothing the second kind could show).
	t.Run(string(registrytest.Distribution3), func(t *testing.T) {
		src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
		rulesText, want := seedShardPlan(t, src, dst.Host)
		dir := t.TempDir()
		images := writeFile(t, dir, "images.yaml", rulesText)

		// The shards of the plan: disjoint, their union is the plan, each
		// destination repository whole, each source read in one shard.
		full := runCLI(t, nil, "plan", "--images", images, "-o", "json")
		if full.code != 0 {
			t.Fatalf("plan: exit %d", full.code)
		}
		all := planJobs(t, full)
		if len(all) != len(want) || len(all) < 40 {
			t.Fatalf("plan has %d jobs, want %d", len(all), len(want))
		}
		const n = 4
		inShard := map[string]int{}
		repoShard := map[string]int{}
		srcShard := map[string]int{}
		nonEmpty := 0
		for i := range n {
			r := runCLI(t, nil, "plan", "--images", images, "-o", "json", "--shard", fmt.Sprintf("%d/%d", i, n))
			if r.code != 0 {
				t.Fatalf("plan --shard %d/%d: exit %d", i, n, r.code)
			}
			jobs := planJobs(t, r)
			if len(jobs) > 0 {
				nonEmpty++
			}
			for _, j := range jobs {
				key := j.Source + " → " + j.Destination
				if prev, ok := inShard[key]; ok {
					t.Errorf("%s in shards %d and %d", key, prev, i)
				}
				inShard[key] = i
				if prev, ok := repoShard[repoOf(j.Destination)]; ok && prev != i {
					t.Errorf("destination repository %s in shards %d and %d", repoOf(j.Destination), prev, i)
				}
				repoShard[repoOf(j.Destination)] = i
				if prev, ok := srcShard[j.Source]; ok && prev != i {
					t.Errorf("source %s read in shards %d and %d", j.Source, prev, i)
				}
				srcShard[j.Source] = i
			}
		}
		for _, j := range all {
			if _, ok := inShard[j.Source+" → "+j.Destination]; !ok {
				t.Errorf("%s → %s is in no shard", j.Source, j.Destination)
			}
		}
		if len(inShard) != len(all) {
			t.Errorf("the shards hold %d jobs, the plan %d", len(inShard), len(all))
		}
		if nonEmpty < 2 {
			t.Errorf("only %d of %d shards have work", nonEmpty, n)
		}

		// The shards as N processes, each told its index the way an
		// Indexed Job tells it.
		var wg sync.WaitGroup
		outs := make([]string, n)
		codes := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				home := t.TempDir()
				cmd := exec.Command(os.Args[0], "sync", "--images", images, "--shards", fmt.Sprint(n), "--no-progress",
					"--ledger", filepath.Join(home, "ledger.jsonl"), "-o", "json")
				cmd.Env = append(os.Environ(), "IMAGESYNC_TEST_AS_MAIN=1", "HOME="+home, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i))
				out, _ := cmd.CombinedOutput()
				outs[i], codes[i] = string(out), cmd.ProcessState.ExitCode()
			}()
		}
		wg.Wait()
		for i := range n {
			if codes[i] != 0 {
				t.Errorf("shard %d: exit %d\n%s", i, codes[i], outs[i])
			}
		}
		for ref, d := range want {
			repo, tag, _ := strings.Cut(ref, ":")
			assertDigest(t, dst, repo, tag, d)
		}
		// verify --shard checks its part only, and together all of it.
		verified := 0
		for i := range n {
			r := runCLI(t, nil, "verify", "--images", images, "-o", "json", "--shard", fmt.Sprintf("%d/%d", i, n))
			if r.code != 0 {
				t.Errorf("verify --shard %d/%d: exit %d", i, n, r.code)
			}
			var v report.Verification
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
				t.Fatal(err)
			}
			for _, j := range v.Jobs {
				if s := inShard[j.Source+" → "+j.Destination]; s != i || !j.OK {
					t.Errorf("verify --shard %d/%d: %s → %s (plan shard %d, ok %v)", i, n, j.Source, j.Destination, s, j.OK)
				}
			}
			verified += len(v.Jobs)
		}
		if verified != len(all) {
			t.Errorf("verify shards checked %d jobs, want %d", verified, len(all))
		}
		// Each blob went up once per destination repository at most (the
		// tracker of one process saw the whole repository).
		for digest, c := range uploadsPerDigest(dst) {
			if c > 2 {
				t.Errorf("blob %s uploaded %d times", digest, c)
			}
		}
	})
}

func TestShardFlags(t *testing.T) {
	images := writeFile(t, t.TempDir(), "images.yaml", "127.0.0.1:1/a/b:1: 127.0.0.1:1/c/d\n")
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--shard", "4/4"}, want: "--shard"},
		{args: []string{"--shard", "x"}, want: "--shard"},
		{args: []string{"--shards", "4"}, want: "JOB_COMPLETION_INDEX is not set"},
		{args: []string{"--shards", "4"}, env: map[string]string{"JOB_COMPLETION_INDEX": "4"}, want: "JOB_COMPLETION_INDEX=4"},
		{args: []string{"--shards", "2", "--shard", "0/2"}, want: "give one of them"},
	} {
		r := runCLI(t, tc.env, append([]string{"plan", "--images", images, "--no-ledger"}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
