//go:build bench

package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/faultproxy"
	"github.com/imagesync/imagesync/internal/registrytest"
)

// netCond is the network between the tools and the registries: loopback
// (the zero value), or a far link — every registry behind its own
// faultproxy that holds each request one round trip (and each new
// connection one more, its handshake), optionally shaping bodies to a
// bandwidth.
type netCond struct {
	rtt       time.Duration
	bandwidth int64 // bytes per second per direction; 0: unshaped
}

func (n netCond) far() bool { return n.rtt > 0 || n.bandwidth > 0 }

// label is appended to a scenario's name: "" on loopback, " @50 ms",
// " @50 ms, 200 Mbit/s".
func (n netCond) label() string {
	if !n.far() {
		return ""
	}
	s := fmt.Sprintf(" @%d ms", n.rtt.Milliseconds())
	if n.bandwidth > 0 {
		s += fmt.Sprintf(", %d Mbit/s", n.bandwidth*8/1e6)
	}
	return s
}

// id names the subtest after the label: "", "@50ms", "@50ms-200Mbit".
func (n netCond) id() string {
	return strings.NewReplacer(" ", "", ",", "-", "/s", "").Replace(n.label())
}

// rtts is BENCH_RTT: round trips for the far scenarios, comma-separated
// durations (default 50ms).
func rtts(t testing.TB) []time.Duration {
	v := os.Getenv("BENCH_RTT")
	if v == "" {
		return []time.Duration{50 * time.Millisecond}
	}
	var out []time.Duration
	for _, f := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			t.Fatalf("BENCH_RTT=%q: %q is not a positive duration (e.g. 50ms,150ms)", v, f)
		}
		out = append(out, d)
	}
	return out
}

// bandwidth is BENCH_BANDWIDTH in Mbit/s (default 200) for the shaped
// variant of W2, in bytes per second.
func bandwidth(t testing.TB) int64 {
	v := os.Getenv("BENCH_BANDWIDTH")
	if v == "" {
		return 200e6 / 8
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("BENCH_BANDWIDTH=%q: want Mbit/s, a positive integer", v)
	}
	return int64(n) * 1e6 / 8
}

// wanConds are the far links a workload runs across: each BENCH_RTT, and
// for W2 also the first with its bandwidth shaped.
func wanConds(t testing.TB, w workload) []netCond {
	var out []netCond
	for _, d := range rtts(t) {
		out = append(out, netCond{rtt: d})
	}
	if w.name == "W2" {
		out = append(out, netCond{rtt: out[0].rtt, bandwidth: bandwidth(t)})
	}
	return out
}

// traceImage is the W1 image the trace follows: a two-platform index
// (w1app0:v5).
const traceImage = 4

// runTrace copies one W1 index, alone, across the first BENCH_RTT with each
// imagesync build and the floor, and keeps every request's time span as
// the far proxies saw it.
func runTrace(t *testing.T, rep *report, avail []tool, src *registrytest.Registry, imgs []image) {
	n := netCond{rtt: rtts(t)[0]}
	one := imgs[traceImage : traceImage+1]
	for _, tl := range avail {
		if !strings.HasPrefix(tl.name, "imagesync") && tl.name != "floor" {
			continue
		}
		t.Run("trace/"+filepath.Base(tl.bin), func(t *testing.T) {
			e := newEnv(t, tl.bin, src, one, n)
			if tl.setup != nil {
				if err := tl.setup(e); err != nil {
					t.Fatal(err)
				}
			}
			s := measure(e, "trace / "+tl.name, func() error { return tl.run(e) }, true)
			rep.addTrace(tl.name, n, s, e.far[0].Timeline(), e.far[1].Timeline())
		})
	}
}

type trace struct {
	tool string
	net  netCond
	s    sample
	reqs []span
}

type span struct {
	side       string // "src", "dst"
	what       string
	start, end time.Duration
}

func (r *report) addTrace(tool string, n netCond, s sample, src, dst []faultproxy.Timed) {
	var all []span
	var t0 time.Time
	for _, side := range [][]faultproxy.Timed{src, dst} {
		for _, q := range side {
			if t0.IsZero() || q.Start.Before(t0) {
				t0 = q.Start
			}
		}
	}
	for i, side := range [][]faultproxy.Timed{src, dst} {
		for _, q := range side {
			end := q.Done
			if end.IsZero() {
				end = q.Start
			}
			all = append(all, span{side: [...]string{"src", "dst"}[i], what: describe(q.Entry), start: q.Start.Sub(t0), end: end.Sub(t0)})
		}
	}
	slices.SortStableFunc(all, func(a, b span) int { return int(a.start - b.start) })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.traces = append(r.traces, trace{tool: tool, net: n, s: s, reqs: all})
}

// describe names a request briefly: "GET manifest v5", "PUT blob 1a2b3c4d",
// "POST upload (mount 1a2b3c4d)".
func describe(q faultproxy.Entry) string {
	short := func(s string) string {
		if _, hex, ok := strings.Cut(s, ":"); ok && len(hex) >= 8 {
			return hex[:8]
		}
		return s
	}
	last := q.Path[strings.LastIndex(q.Path, "/")+1:]
	switch {
	case strings.Contains(q.Path, "/blobs/uploads/"):
		if m := queryValue(q.RawQuery, "mount"); m != "" {
			return q.Method + " upload (mount " + short(m) + ")"
		}
		if d := queryValue(q.RawQuery, "digest"); d != "" {
			return q.Method + " upload " + short(d)
		}
		return q.Method + " upload"
	case strings.Contains(q.Path, "/blobs/"):
		return q.Method + " blob " + short(last)
	case strings.Contains(q.Path, "/manifests/"):
		return q.Method + " manifest " + short(last)
	case strings.HasSuffix(q.Path, "/tags/list"):
		return q.Method + " tags"
	}
	return q.Method + " " + q.Path
}

func queryValue(raw, k string) string {
	for _, kv := range strings.Split(raw, "&") {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return strings.ReplaceAll(v, "%3A", ":")
		}
	}
	return ""
}

// traceText draws each trace as one row per request on a time axis (one
// character per tick), with the round trip marked.
func (r *report) traceText(w io.Writer) {
	for _, tr := range r.traces {
		var end time.Duration
		for _, q := range tr.reqs {
			end = max(end, q.end)
		}
		tick := max(tr.net.rtt/5, time.Millisecond)
		fmt.Fprintf(w, "%s, one W1 index (2 children, 8 blobs, 1 MiB + 256 KiB layers) across %s: %d requests, %.0f ms (%.1f round trips); one character is %v.\n\n",
			tr.tool, strings.TrimPrefix(tr.net.label(), " @"), len(tr.reqs), float64(end)/1e6, float64(end)/float64(tr.net.rtt), tick)
		fmt.Fprintln(w, "```")
		width := int(end/tick) + 1
		for _, q := range tr.reqs {
			a, b := int(q.start/tick), max(int(q.end/tick), int(q.start/tick)+1)
			bar := strings.Repeat(" ", a) + strings.Repeat("=", b-a) + strings.Repeat(" ", max(width-b, 0))
			fmt.Fprintf(w, "%5.0f ms |%s| %s %s\n", float64(q.start)/1e6, bar, q.side, q.what)
		}
		fmt.Fprintln(w, "```")
		fmt.Fprintln(w)
	}
}
