package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// promTool finds Prometheus' server or promtool: $env (then it must work),
// else on the PATH, else the test is skipped.
func promTool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", env, p, err)
		}
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found (set %s, or run scripts/test-deps.sh)", name, env)
	}
	return p
}

// startPrometheus runs a Prometheus server on loopback scraping target
// every second, and returns its base URL.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: imagesync
    static_configs:
      - targets: [%q]
`, target))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within a minute:\n%s", logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promQuery asks Prometheus' HTTP API for the value of an instant query
// that returns one series; ok is false while it returns none.
func promQuery(t *testing.T, base, query string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Status != "success" {
		t.Fatalf("query %s: status %q, %v", query, out.Status, err)
	}
	switch len(out.Data.Result) {
	case 0:
		return 0, false
	case 1:
	default:
		t.Fatalf("query %s: %d series, want 1", query, len(out.Data.Result))
	}
	s, _ := out.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q", query, s)
	}
	return v, true
}

// waitProm waits until query returns want.
func waitProm(t *testing.T, base, query string, want float64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		v, ok := promQuery(t, base, query)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s = %v (present %v), want %v within a minute", query, v, ok, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var metricsURLRE = regexp.MustCompile(`(?m)^serving metrics: url=(http://\S+/metrics)`)

// TestMetricsScrapedByPrometheus runs a watch-mode sync with --metrics-addr
// that a real Prometheus server scrapes: its HTTP API returns the copied
// images counter and the last successful run's time; promtool accepts the
// endpoint's output.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	// Serial: frees a port and hands it to prometheus; a test beside it could take it meanwhile.
	if testing.Short() {
		t.Skip("integration")
	}
	prom := promTool(t, "IMAGESYNC_PROMETHEUS", "prometheus")
	promtool := promTool(t, "IMAGESYNC_PROMTOOL", "promtool")
	src := registrytest.Start(t, registrytest.Distribution3, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Distribution2, registrytest.Options{})
	d1, _ := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 1, 512, true, 2601)
	d2, _ := src.PushRandomImage(t, "lib/app", "2", linuxAmd64, 2, 2048, false, 2602)
	home := t.TempDir()
	cfg := writeFile(t, home, "imagesync.yaml", watchConfig(src, dst, ""))
	begin := time.Now()
	w := startWatcher(t, home, "sync", "-f", cfg, "--every", "2s", "--no-progress", "--metrics-addr", "127.0.0.1:0")
	w.waitCount(t, metricsURLRE, 1)
	endpoint := metricsURLRE.FindStringSubmatch(w.stderr())[1]
	u, _ := url.Parse(endpoint)
	base := startPrometheus(t, prom, u.Host)

	// Run 1 copies two images; later runs skip them.
	w.waitCount(t, summaryRE, 1)
	assertDigest(t, dst, "lib/app", "1", d1)
	assertDigest(t, dst, "lib/app", "2", d2)
	waitProm(t, base, `imagesync_images_total{result="copied"}`, 2)
	waitProm(t, base, `imagesync_runs_total{result="failed"}`, 0)
	ts, ok := promQuery(t, base, `imagesync_last_success_timestamp_seconds`)
	if !ok || ts < float64(begin.Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("last success at %v (present %v), want between %d and now", ts, ok, begin.Unix())
	}

	// A tag pushed between runs: the counter goes on across runs, and the
	// last success moves to the run that copied it.
	d3, _ := src.PushRandomImage(t, "lib/app", "3", linuxAmd64, 1, 512, true, 2603)
	seen := len(summaryRE.FindAllString(w.stderr(), -1))
	w.waitCount(t, regexp.MustCompile(`(?m)^1 copied, 2 skipped`), 1)
	assertDigest(t, dst, "lib/app", "3", d3)
	waitProm(t, base, `imagesync_images_total{result="copied"}`, 3)
	waitProm(t, base, `imagesync_images_total{result="failed"}`, 0)
	waitProm(t, base, fmt.Sprintf(`imagesync_oldest_pending_age_seconds{rule="%s/lib/app"}`, src.Host), 0)
	if n, ok := promQuery(t, base, `sum(imagesync_runs_total{result="success"})`); !ok || n < float64(seen) {
		t.Errorf("prometheus: %v successful runs, want at least %d", n, seen)
	}
	later, _ := promQuery(t, base, `imagesync_last_success_timestamp_seconds`)
	if later <= ts {
		t.Errorf("last success %v did not move past %v", later, ts)
	}
	if n, ok := promQuery(t, base, fmt.Sprintf(`sum(imagesync_requests_total{registry=%q,status_class="2xx"})`, src.Host)); !ok || n == 0 {
		t.Errorf("no 2xx requests to %s counted", src.Host)
	}

	// promtool accepts the endpoint's output; /healthz answers.
	resp, err := http.Get(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, leak := range []string{"sha256:", `tag="`, `digest="`} {
		if strings.Contains(string(body), leak) {
			t.Errorf("the metrics hold %q: labels must stay bounded", leak)
		}
	}
	resp, err = http.Get(strings.TrimSuffix(endpoint, "/metrics") + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %v %v", resp, err)
	}
}
