//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// measured is one process run: wall time and peak RSS.
type measured struct {
	dur time.Duration
	rss int64
}

// ledgerResult is the ledger-at-scale scenario.
type ledgerResult struct {
	manifests, blobFacts, images int
	jsonlBytes, dbBytes          int64
	planJSONL                    measured // plan of one rule reading the JSON-lines ledger whole (as before the store)
	migrate                      measured // the first sync: migration to the store
	plan                         measured // plan of one rule with the store
	stats                        measured
	noopSmall, noopBig           measured // default no-op of all images: small ledger vs big
	noopSmallT, noopBigT         measured // the same with --trust-ledger
}

// ledgerImages is how many images the no-op runs: 100 tags per repository.
func ledgerImages() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_LEDGER_IMAGES")); err == nil && n >= 100 {
		return n
	}
	return 10_000
}

func ledgerSize() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_LEDGER_MANIFESTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// writeBigLedger writes a JSON-lines ledger (the format of earlier versions)
// of n destination manifests (10 tags per repository) and 3 blob facts per
// manifest (30 per repository: 25 of its own, 5 shared base layers).
func writeBigLedger(w io.Writer, n int) (blobFacts int, err error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	fmt.Fprintf(bw, `{"t":"h","v":1,"created":"2026-01-01T00:00:00Z"}`+"\n")
	for repo := 0; repo*10 < n; repo++ {
		name := fmt.Sprintf("mirror.example.com/team%03d/app%06d", repo%1000, repo)
		fmt.Fprintf(bw, `{"t":"b","repo":%q,"d":[`, name)
		for k := range 30 {
			if k > 0 {
				bw.WriteByte(',')
			}
			d := repo*25 + k + 1000
			if k >= 25 {
				d = (repo%200)*5 + k - 25 // shared bases
			}
			fmt.Fprintf(bw, `"sha256:%064x"`, d)
			blobFacts++
		}
		bw.WriteString("]}\n")
		for tag := 0; tag < 10 && repo*10+tag < n; tag++ {
			fmt.Fprintf(bw, `{"t":"m","dst":"%s:v%d","digest":"sha256:%064x","src":"docker.io/team%03d/app%06d:v%d","srcDigest":"sha256:%064x","time":"2026-01-01T00:00:00Z"}`+"\n",
				name, tag, repo*10+tag+1<<40, repo%1000, repo, tag, repo*10+tag+1<<40)
		}
	}
	return blobFacts, bw.Flush()
}

// runMeasured runs bin with args in dir and returns its wall time, peak
// RSS and standard output.
func runMeasured(t *testing.T, e *env, bin string, args ...string) (measured, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = e.dir, e.environ
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	rss, _, err := runWatched(cmd)
	m := measured{dur: time.Since(start), rss: rss}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, errb.String())
	}
	return m, out.String()
}

// runLedgerScale measures plan and a no-op of many images with a ledger of
// a million images, against a small one.
func runLedgerScale(t *testing.T, rep *report, bin string) {
	t.Run("ledger", func(t *testing.T) {
		repos, tags := ledgerImages()/100, 100
		src := registrytest.Start(t, registryKind(), registrytest.Options{})
		b := newBuilder(t, src, 4)
		var all, one strings.Builder
		start := time.Now()
		e := newEnv(t, bin, src, nil, netCond{})
		for r := range repos {
			repo := fmt.Sprintf("%s/lr%d", srcNS, r)
			raw := b.image(repo, nil, []int{1 << 10}, "amd64", repo)
			var names []string
			for k := 1; k <= tags; k++ {
				tag := fmt.Sprintf("t%d", k)
				b.push(repo, tag, raw, registrytest.MediaTypeOCIManifest)
				names = append(names, tag)
			}
			fmt.Fprintf(&all, "%s/%s:%s: %s/%s/lr%d\n", src.Host, repo, strings.Join(names, ","), e.dst.Host, dstNS, r)
		}
		fmt.Fprintf(&one, "%s/%s/lr0:t1: %s/%s/lr0\n", src.Host, srcNS, e.dst.Host, dstNS)
		t.Logf("ledger: seeded %d tags in %v", repos*tags, time.Since(start).Round(time.Millisecond))
		allRules, oneRule := e.write("all.yaml", all.String()), e.write("one.yaml", one.String())
		small, big := filepath.Join(e.dir, "small.db"), filepath.Join(e.dir, "big.jsonl")
		runMeasured(t, e, bin, "sync", "--images", allRules, "--ledger", small, "--proc", fmt.Sprint(parallelism))

		// The big ledger: a million other images, then what the sync recorded.
		res := &ledgerResult{manifests: ledgerSize(), images: repos * tags}
		f, err := os.Create(big)
		if err != nil {
			t.Fatal(err)
		}
		if res.blobFacts, err = writeBigLedger(f, res.manifests); err != nil {
			t.Fatal(err)
		}
		_, exported := runMeasured(t, e, bin, "ledger", "export", "--ledger", small)
		_, rest, _ := strings.Cut(exported, "\n") // without its header
		if _, err := f.WriteString(rest); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(big)
		res.jsonlBytes = fi.Size()

		planArgs := []string{"plan", "--images", oneRule, "--ledger", big, "-o", "json"}
		res.planJSONL, _ = runMeasured(t, e, bin, planArgs...)
		res.migrate, _ = runMeasured(t, e, bin, "sync", "--images", oneRule, "--ledger", big)
		fi, _ = os.Stat(big)
		res.dbBytes = fi.Size()
		res.plan, _ = runMeasured(t, e, bin, planArgs...)
		for range 2 { // the best of a few: plan is short, noise is not
			if m, _ := runMeasured(t, e, bin, planArgs...); m.dur < res.plan.dur {
				res.plan = m
			}
		}
		res.stats, _ = runMeasured(t, e, bin, "ledger", "stats", "--ledger", big)

		trust := hasFlag(bin, "--trust-ledger")
		var sm, bg, smT, bgT []measured
		for range rounds() {
			noop := func(ledger string, extra ...string) measured {
				m, _ := runMeasured(t, e, bin, append([]string{"sync", "--images", allRules, "--ledger", ledger, "--proc", fmt.Sprint(parallelism)}, extra...)...)
				return m
			}
			sm, bg = append(sm, noop(small)), append(bg, noop(big))
			if trust {
				smT, bgT = append(smT, noop(small, "--trust-ledger")), append(bgT, noop(big, "--trust-ledger"))
			}
		}
		med := func(v []measured) measured {
			if len(v) == 0 {
				return measured{}
			}
			return measured{dur: pick(v, func(m measured) time.Duration { return m.dur }), rss: pick(v, func(m measured) int64 { return m.rss })}
		}
		res.noopSmall, res.noopBig, res.noopSmallT, res.noopBigT = med(sm), med(bg), med(smT), med(bgT)
		rep.ledger = res
	})
}

func (l *ledgerResult) table(w io.Writer) {
	fmt.Fprintf(w, "A ledger of %s destination manifests and %s blob facts (generated at bench time: a %s JSON-lines file as earlier versions wrote, %s once migrated), plus the %s images of a real sync:\n\n",
		thousands(l.manifests), thousands(l.blobFacts), mib(l.jsonlBytes), mib(l.dbBytes), thousands(l.images))
	fmt.Fprintln(w, "| run | time | peak RSS |")
	fmt.Fprintln(w, "|---|---:|---:|")
	row := func(name string, m measured) {
		if m.dur > 0 {
			fmt.Fprintf(w, "| %s | %.2f s | %s |\n", name, m.dur.Seconds(), mib(m.rss))
		}
	}
	row("`plan` of one rule, the JSON-lines ledger read whole (how every run read it before)", l.planJSONL)
	row("first `sync` of one rule: migration to the indexed store", l.migrate)
	row("`plan` of one rule with the store", l.plan)
	row("`ledger stats` (walks every key)", l.stats)
	row(fmt.Sprintf("no-op of %s images, small ledger", thousands(l.images)), l.noopSmall)
	row(fmt.Sprintf("no-op of %s images, big ledger", thousands(l.images)), l.noopBig)
	row(fmt.Sprintf("no-op of %s images `--trust-ledger`, small ledger", thousands(l.images)), l.noopSmallT)
	row(fmt.Sprintf("no-op of %s images `--trust-ledger`, big ledger", thousands(l.images)), l.noopBigT)
}
