//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
)

// The destination's limiter: a token bucket of limitRate requests per
// second; beyond it 429 with Retry-After: 1; plus 3% 503s and 3% dropped
// connections among the requests it lets through.
const limitRate = 100

// limitSample is one run behind the limiter.
type limitSample struct {
	dur      time.Duration
	through  int // requests the bucket let through
	refused  int // requests it answered 429
	errors5  int // injected 503s
	resets   int // injected dropped connections
	digests  string
	failed   bool
	limitDur time.Duration // through ÷ limitRate: the limit's own time
}

func (s limitSample) ratio() float64 { return s.dur.Seconds() / s.limitDur.Seconds() }

func limitRounds() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_LIMIT_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return rounds()
}

// runLimit copies W1 into a destination behind the limiter with each
// imagesync build.
func runLimit(t *testing.T, rep *report, avail []tool, src *registrytest.Registry, imgs []image) {
	for round := range limitRounds() {
		for _, tl := range avail {
			if !strings.HasPrefix(tl.name, "imagesync") || (tl.name != "imagesync" && round > 0) {
				continue // another imagesync build (the base) once: it is slow here
			}
			t.Run(fmt.Sprintf("limit/round%d/%s", round+1, filepath.Base(tl.bin)), func(t *testing.T) {
				e := newEnv(t, tl.bin, src, imgs, netCond{})
				fp := faultproxy.Start(t, e.dst.Host, faultproxy.Plan{Seed: int64(round + 1), Limit: limitRate,
					Rate5xx: 0.03, Status5xx: 503, RateReset: 0.03})
				e.dstHost = fp.Host
				if err := tl.setup(e); err != nil {
					t.Fatal(err)
				}
				s := measure(e, "limit / "+tl.name, func() error { return tl.run(e) }, true)
				c := fp.Counts()
				ls := limitSample{dur: s.dur, through: c.Requests - c.Limited, refused: c.Limited, errors5: c.ServerErrors,
					resets: c.ResetsRequest + c.ResetsResponse, digests: s.digests, failed: s.failed}
				ls.limitDur = time.Duration(float64(ls.through) / limitRate * float64(time.Second))
				t.Logf("behind the limiter: %v for %d requests let through (the limit's own time %v: %.2f×), %d refused",
					s.dur.Round(time.Millisecond), ls.through, ls.limitDur.Round(time.Millisecond), ls.ratio(), ls.refused)
				rep.addLimit(tl.name, ls)
			})
		}
	}
}
