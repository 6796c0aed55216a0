package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// seedMany pushes n small images as tags of two repositories plus one index,
// and returns the rule file text and the expected destination digests.
func seedMany(t *testing.T, src *registrytest.Registry, dstHost string, n int) (rulesText string, want map[string]string) {
	t.Helper()
	want = map[string]string{}
	var b strings.Builder
	for i := range n - 1 {
		repo := fmt.Sprintf("lib/r%d", i%2)
		tag := fmt.Sprintf("v%d", i)
		d, _ := src.PushRandomImage(t, repo, tag, linuxAmd64, 1, 256, i%3 == 0, int64(1000+i))
		want[repo+":"+tag] = d
	}
	idx, _, _ := src.PushIndex(t, "lib/multi", "v1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}}, true, 999)
	want["lib/multi:v1"] = idx
	fmt.Fprintf(&b, "%s/lib/r0: %s/lib/r0\n", src.Host, dstHost) // all tags: one listing
	var r1 []string
	for i := 1; i < n-1; i += 2 {
		r1 = append(r1, fmt.Sprintf("v%d", i))
	}
	fmt.Fprintf(&b, "%s/lib/r1:%s: %s/lib/r1\n", src.Host, strings.Join(r1, ","), dstHost)
	fmt.Fprintf(&b, "%s/lib/multi:v1: %s/lib/multi\n", src.Host, dstHost)
	return b.String(), want
}

func TestLedgerNoopResync(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		const images = 30 // counted per image, not timed: 30 show it as 60 did
		text, want := seedMany(t, src, dst.Host, images)
		dir := t.TempDir()
		rulesFile := writeFile(t, dir, "images.yaml", text)
		ledger := filepath.Join(dir, "ledger.jsonl")
		if r := runCLI(t, nil, "--images", rulesFile, "--ledger", ledger, "--proc", "8"); r.code != 0 {
			t.Fatalf("first sync: exit %d", r.code)
		}
		for ref, d := range want {
			repo, tag, _ := strings.Cut(ref, ":")
			assertDigest(t, dst, repo, tag, d)
		}
		// checkSource: one manifest HEAD per source reference, the tag
		// listing of the all-tags rule, and the ping; never a GET of a
		// manifest or blob.
		checkSource := func(mode string) int {
			t.Helper()
			heads := src.Log.Count("HEAD", "/manifests/")
			lists := src.Log.Count("GET", "/tags/list")
			pings := src.Log.Count("GET", `^/v2/$`)
			if heads != images || lists != 1 || pings != 1 || len(src.Log.All()) != heads+lists+pings {
				t.Errorf("%s: source requests: %d HEAD, %d tag lists, %d pings, %d in all; want %d, 1, 1", mode, heads, lists, pings, len(src.Log.All()), images)
			}
			return len(src.Log.All())
		}
		noop := func(mode string, args ...string) (srcN, dstN int, took time.Duration) {
			t.Helper()
			src.Log.Reset()
			dst.Log.Reset()
			start := time.Now()
			r := runCLI(t, nil, append([]string{"--images", rulesFile, "--proc", "8"}, args...)...)
			took = time.Since(start)
			if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("0 copied, %d skipped", images)) {
				t.Fatalf("%s: no-op sync: exit %d", mode, r.code)
			}
			if n := dst.Log.Count("PUT", "") + dst.Log.Count("POST", "") + dst.Log.Count("PATCH", "") + dst.Log.Count("DELETE", ""); n != 0 {
				t.Errorf("%s: %d writes on a no-op run", mode, n)
			}
			return checkSource(mode), len(dst.Log.All()), took
		}

		// --trust-ledger: nothing at all to the destination.
		srcT, dstT, tookT := noop("--trust-ledger", "--ledger", ledger, "--trust-ledger")
		if dstT != 0 {
			t.Errorf("no-op sync with --trust-ledger sent %d requests to the destination: %v", dstT, dst.Log.All())
		}
		// The default ledger: one manifest HEAD per destination reference
		// confirms what the ledger says (plus the ping), no blob HEAD.
		srcL, dstL, tookL := noop("ledger", "--ledger", ledger)
		if n := dst.Log.Count("HEAD", "/manifests/"); n != images || dstL != images+1 {
			t.Errorf("default ledger: %d destination manifest HEADs, %d requests in all; want %d and %d", n, dstL, images, images+1)
		}
		// Without a ledger: the same on the destination.
		srcN, dstN, tookN := noop("--no-ledger", "--no-ledger")
		if n := dst.Log.Count("HEAD", "/manifests/"); n != images {
			t.Errorf("%d destination HEADs without the ledger, want %d", n, images)
		}
		t.Logf("no-op re-sync of %d images on %s: --trust-ledger %d requests (%d to the destination) in %v; ledger (default) %d requests (%d to the destination) in %v; --no-ledger %d requests (%d to the destination) in %v",
			images, kind, srcT+dstT, dstT, tookT.Round(time.Millisecond), srcL+dstL, dstL, tookL.Round(time.Millisecond), srcN+dstN, dstN, tookN.Round(time.Millisecond))
	})
}

// A tag deleted and one overwritten at the destination behind imagesync's
// back: the default plan shows copy and update, a plain sync repairs both;
// --trust-ledger does not look (and says skip).
func TestDestinationDriftRepaired(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		a, _ := src.PushRandomImage(t, "lib/a", "1", linuxAmd64, 2, 1500, true, 301)
		b, _ := src.PushRandomImage(t, "lib/b", "1", linuxAmd64, 1, 1500, false, 302)
		c, _ := src.PushRandomImage(t, "lib/c", "1", linuxAmd64, 1, 1500, true, 303)
		m, _, _ := src.PushIndex(t, "lib/m", "1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}}, true, 304)
		dir := t.TempDir()
		rulesFile := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/a:1: %[2]s/lib/a\n%[1]s/lib/b:1: %[2]s/lib/b\n%[1]s/lib/c:1: %[2]s/lib/c\n%[1]s/lib/m:1: %[2]s/lib/m\n", src.Host, dst.Host))
		ledger := filepath.Join(dir, "ledger.jsonl")
		if r := runCLI(t, nil, "--images", rulesFile, "--ledger", ledger); r.code != 0 {
			t.Fatal("first sync failed")
		}

		// Behind the ledger's back: lib/a:1 deleted, lib/b:1 and lib/m:1
		// overwritten with other images.
		dst.DeleteManifest(t, "lib/a", a)
		other, _ := dst.PushRandomImage(t, "lib/b", "1", linuxAmd64, 1, 100, true, 399)
		dst.PushRandomImage(t, "lib/m", "1", linuxAmd64, 1, 100, true, 398)
		assertDigest(t, dst, "lib/b", "1", other)

		wantActions := map[string]string{"lib/a": "copy", "lib/b": "update", "lib/c": "skip", "lib/m": "update"}
		p, r := planJSON(t, "--images", rulesFile, "--ledger", ledger, "--detailed-exitcode")
		if r.code != exitPending {
			t.Errorf("plan exit %d, want %d", r.code, exitPending)
		}
		for _, j := range p.Jobs {
			repo := j.Source[len(src.Host)+1 : strings.LastIndex(j.Source, ":")]
			if j.Action != wantActions[repo] {
				t.Errorf("plan %s: %s, want %s", repo, j.Action, wantActions[repo])
			}
		}
		// Trusting the ledger, nothing is seen (and nothing asked).
		dst.Log.Reset()
		p, r = planJSON(t, "--images", rulesFile, "--ledger", ledger, "--trust-ledger", "--detailed-exitcode")
		if r.code != 0 || p.Summary["skip"] != 4 || len(dst.Log.All()) != 0 {
			t.Errorf("plan --trust-ledger: exit %d, summary %v, %d destination requests; want 0, 4 skips, none", r.code, p.Summary, len(dst.Log.All()))
		}

		// A plain sync repairs both, re-using the blobs the ledger knows.
		dst.Log.Reset()
		r = runCLI(t, nil, "--images", rulesFile, "--ledger", ledger)
		if r.code != 0 || !strings.Contains(r.stderr, "3 copied, 1 skipped") {
			t.Fatalf("repair sync: exit %d", r.code)
		}
		assertDigest(t, dst, "lib/a", "1", a)
		assertDigest(t, dst, "lib/b", "1", b)
		assertDigest(t, dst, "lib/c", "1", c)
		assertDigest(t, dst, "lib/m", "1", m)
		if ups := uploadsPerDigest(dst); len(ups) != 0 {
			t.Errorf("blobs the destination still held were uploaded again: %v", ups)
		}
		// One HEAD per destination tag decided it, drifted or not.
		for _, repo := range []string{"lib/a", "lib/b", "lib/c", "lib/m"} {
			if n := dst.Log.Count("HEAD", "/v2/"+repo+"/manifests/1$"); n != 1 {
				t.Errorf("%s:1 asked %d times, want 1", repo, n)
			}
		}
		// And the next run is a no-op again.
		if p, r := planJSON(t, "--images", rulesFile, "--ledger", ledger, "--detailed-exitcode"); r.code != 0 || p.Summary["skip"] != 4 {
			t.Errorf("plan after the repair: exit %d, summary %v", r.code, p.Summary)
		}

		// Repositories wiped (manifests, children and blobs), as after a
		// restore from an old backup or garbage collection: the ledger's
		// blob knowledge is wrong too, and one plain sync still repairs all.
		wipe(t, dst, "lib/a", a)
		wipe(t, dst, "lib/m", m)
		if r := runCLI(t, nil, "--images", rulesFile, "--ledger", ledger, "--retries", "0"); r.code != 0 || !strings.Contains(r.stderr, "2 copied, 2 skipped") {
			t.Fatalf("sync after the wipe: exit %d", r.code)
		}
		assertDigest(t, dst, "lib/a", "1", a)
		assertDigest(t, dst, "lib/m", "1", m)
		if probs, r := verifyJSON(t, "--images", rulesFile, "--ledger", ledger, "--deep"); r.code != 0 || len(probs) != 0 {
			t.Errorf("verify after the wipe and sync: exit %d, problems %v", r.code, probs)
		}
	})
}

// wipe deletes a manifest from repo with everything it references: child
// manifests, configs and layers.
func wipe(t *testing.T, r *registrytest.Registry, repo, digest string) {
	t.Helper()
	raw, _, _ := r.Manifest(t, repo, digest)
	var m struct {
		Manifests []struct{ Digest string }
		Config    struct{ Digest string }
		Layers    []struct{ Digest string }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, c := range m.Manifests {
		wipe(t, r, repo, c.Digest)
	}
	if m.Config.Digest != "" {
		r.DeleteBlob(t, repo, m.Config.Digest)
	}
	for _, l := range m.Layers {
		r.DeleteBlob(t, repo, l.Digest)
	}
	r.DeleteManifest(t, repo, digest)
}

func TestPlan(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		_, rawA := src.PushRandomImage(t, "lib/a", "1", linuxAmd64, 2, 3000, false, 1)
		_, rawB := src.PushRandomImage(t, "lib/b", "1", linuxAmd64, 3, 5000, true, 2)
		_, _, children := src.PushIndex(t, "lib/m", "1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}}, true, 3)
		var idxBytes int64
		for _, c := range children {
			raw, _, _ := src.Manifest(t, "lib/m", c)
			idxBytes += blobBytes(t, raw)
		}
		dir := t.TempDir()
		rulesFile := writeFile(t, dir, "images.yaml", fmt.Sprintf(
			"%[1]s/lib/a:1: %[2]s/lib/a\n%[1]s/lib/b:1: %[2]s/lib/b\n%[1]s/lib/m:1: %[2]s/lib/m\n%[1]s/lib/gone:1: %[2]s/lib/gone\n", src.Host, dst.Host))
		ledger := filepath.Join(dir, "ledger.jsonl")
		writes := func() int {
			return dst.Log.Count("PUT", "") + dst.Log.Count("POST", "") + dst.Log.Count("PATCH", "") + dst.Log.Count("DELETE", "")
		}

		// Empty destination: everything to copy, with the bytes of its blobs.
		p, r := planJSON(t, "--images", rulesFile, "--ledger", ledger)
		if r.code != exitSomeFail { // lib/gone does not exist
			t.Fatalf("plan exit %d, want 1 (one error)", r.code)
		}
		wantBytes := map[string]int64{"lib/a": blobBytes(t, rawA), "lib/b": blobBytes(t, rawB), "lib/m": idxBytes}
		for _, j := range p.Jobs {
			repo := strings.TrimPrefix(strings.SplitN(j.Destination, ":", 3)[1][len(strings.Split(dst.Host, ":")[1]):], "/")
			repo = strings.TrimSuffix(repo, ":1")
			switch {
			case strings.Contains(j.Source, "lib/gone"):
				if j.Action != "error" || !strings.Contains(j.Reason, " not found in "+src.Host+"/lib/gone") {
					t.Errorf("missing source: %+v", j)
				}
			case j.Action != "copy" || j.Bytes != wantBytes[repo] || j.Digest == "":
				t.Errorf("%s: action %s, %d bytes; want copy, %d bytes", j.Destination, j.Action, j.Bytes, wantBytes[repo])
			}
		}
		if p.Summary["copy"] != 3 || p.Summary["error"] != 1 || p.Summary["bytes"] != wantBytes["lib/a"]+wantBytes["lib/b"]+wantBytes["lib/m"] {
			t.Errorf("summary %v", p.Summary)
		}
		// --detailed-exitcode with work pending and no error: 4.
		okRules := writeFile(t, dir, "ok.yaml", fmt.Sprintf("%[1]s/lib/a:1: %[2]s/lib/a\n%[1]s/lib/b:1: %[2]s/lib/b\n%[1]s/lib/m:1: %[2]s/lib/m\n", src.Host, dst.Host))
		if r := runCLI(t, nil, "plan", "--images", okRules, "--ledger", ledger, "--detailed-exitcode"); r.code != exitPending || !strings.Contains(r.stdout, "ACTION") {
			t.Errorf("detailed exit code %d, want %d", r.code, exitPending)
		}
		if n := writes(); n != 0 {
			t.Fatalf("plan wrote to the destination: %d requests", n)
		}

		// After a sync: everything skips, with and without the ledger.
		if r := runCLI(t, nil, "--images", okRules, "--ledger", ledger); r.code != 0 {
			t.Fatal("sync failed")
		}
		for _, args := range [][]string{{"--ledger", ledger}, {"--no-ledger"}} {
			p, r = planJSON(t, append([]string{"--images", okRules, "--detailed-exitcode"}, args...)...)
			if r.code != 0 || p.Summary["skip"] != 3 || p.Summary["bytes"] != 0 {
				t.Errorf("plan %v after sync: exit %d, summary %v", args, r.code, p.Summary)
			}
		}

		// A source tag moves: that job alone is an update.
		dst.Log.Reset()
		moved, rawMoved := src.PushRandomImage(t, "lib/b", "1", linuxAmd64, 1, 700, true, 77)
		p, r = planJSON(t, "--images", okRules, "--ledger", ledger, "--detailed-exitcode")
		if r.code != exitPending {
			t.Errorf("exit %d, want %d", r.code, exitPending)
		}
		for _, j := range p.Jobs {
			wantAction := "skip"
			if strings.Contains(j.Source, "lib/b") {
				wantAction = "update"
				if j.Digest != moved || j.Bytes != blobBytes(t, rawMoved) {
					t.Errorf("update: digest %s bytes %d, want %s %d", j.Digest, j.Bytes, moved, blobBytes(t, rawMoved))
				}
			}
			if j.Action != wantAction {
				t.Errorf("%s: %s, want %s", j.Source, j.Action, wantAction)
			}
		}
		if n := writes(); n != 0 {
			t.Fatalf("plan wrote to the destination: %d requests", n)
		}
	})
}

func TestVerifyFindsAndSyncRepairs(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		a, rawA := src.PushRandomImage(t, "lib/a", "1", linuxAmd64, 2, 2000, false, 11)
		b, _ := src.PushRandomImage(t, "lib/b", "1", linuxAmd64, 1, 2000, true, 12)
		c, _ := src.PushRandomImage(t, "lib/c", "1", linuxAmd64, 1, 2000, true, 13)
		m, _, children := src.PushIndex(t, "lib/m", "1", []registrytest.Platform{linuxAmd64, {OS: "linux", Arch: "arm64"}}, false, 14)
		dir := t.TempDir()
		rulesFile := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/lib/a:1: %[2]s/lib/a\n%[1]s/lib/b:1: %[2]s/lib/b\n%[1]s/lib/c:1: %[2]s/lib/c\n%[1]s/lib/m:1: %[2]s/lib/m\n", src.Host, dst.Host))
		ledger := filepath.Join(dir, "ledger.jsonl")
		if r := runCLI(t, nil, "--images", rulesFile, "--ledger", ledger); r.code != 0 {
			t.Fatal("sync failed")
		}
		if probs, r := verifyJSON(t, "--images", rulesFile, "--ledger", ledger, "--deep"); r.code != 0 || len(probs) != 0 {
			t.Fatalf("fresh mirror: verify exit %d, problems %v", r.code, probs)
		}

		// Behind the ledger's back: a layer of a, the manifest of b, a child
		// of m deleted; c overwritten with another image.
		var ma struct{ Layers []struct{ Digest string } }
		_ = json.Unmarshal(rawA, &ma)
		dst.DeleteBlob(t, "lib/a", ma.Layers[1].Digest)
		dst.DeleteManifest(t, "lib/b", b)
		dst.DeleteManifest(t, "lib/m", children[1])
		dst.PushRandomImage(t, "lib/c", "1", linuxAmd64, 1, 100, true, 99)

		probs, r := verifyJSON(t, "--images", rulesFile, "--ledger", ledger)
		if r.code != exitSomeFail {
			t.Fatalf("verify exit %d, want %d", r.code, exitSomeFail)
		}
		for dstRef, want := range map[string]string{"/lib/a:1": "missing-blob", "/lib/b:1": "missing", "/lib/c:1": "different-digest", "/lib/m:1": "missing-child"} {
			if got := probs[dst.Host+dstRef]; len(got) != 1 || got[0] != want {
				t.Errorf("%s: problems %v, want [%s]", dstRef, got, want)
			}
		}
		// Offline (ledger only) sees the overwritten tag and the missing manifest too.
		probs, r = verifyJSON(t, "--images", rulesFile, "--ledger", ledger, "--offline")
		if r.code != exitSomeFail || len(probs[dst.Host+"/lib/c:1"]) == 0 {
			t.Errorf("offline verify: exit %d, problems %v", r.code, probs)
		}

		// The next sync repairs everything, and verify agrees.
		if r := runCLI(t, nil, "--images", rulesFile, "--ledger", ledger); r.code != 0 {
			t.Fatal("repair sync failed")
		}
		assertDigest(t, dst, "lib/a", "1", a)
		assertDigest(t, dst, "lib/b", "1", b)
		assertDigest(t, dst, "lib/c", "1", c)
		assertDigest(t, dst, "lib/m", "1", m)
		assertDigest(t, dst, "lib/m", children[1], children[1])
		if !dst.HasBlob(t, "lib/a", ma.Layers[1].Digest) {
			t.Error("the deleted layer was not restored")
		}
		if probs, r := verifyJSON(t, "--images", rulesFile, "--ledger", ledger, "--deep"); r.code != 0 || len(probs) != 0 {
			t.Errorf("after repair: verify exit %d, problems %v", r.code, probs)
		}
	})
}

func TestVerifyOfflineTouchesNoSource(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	d, _ := src.PushRandomImage(t, "lib/a", "1", linuxAmd64, 1, 500, true, 5)
	src.PushRandomImage(t, "lib/a", "2", linuxAmd64, 1, 500, true, 6)
	dir := t.TempDir()
	rulesFile := writeFile(t, dir, "images.yaml", fmt.Sprintf("%s/lib/a: %s/mirror/a\n", src.Host, dst.Host))
	ledger := filepath.Join(dir, "ledger.jsonl")
	if r := runCLI(t, nil, "--images", rulesFile, "--ledger", ledger); r.code != 0 {
		t.Fatal("sync failed")
	}
	src.Log.Reset()
	probs, r := verifyJSON(t, "--images", rulesFile, "--ledger", ledger, "--offline")
	if r.code != 0 || len(probs) != 0 || !strings.Contains(r.stdout, d) {
		t.Fatalf("offline verify: exit %d, problems %v", r.code, probs)
	}
	if n := len(src.Log.All()); n != 0 {
		t.Errorf("offline verify sent %d requests to the source", n)
	}
	if r := runCLI(t, nil, "verify", "--images", rulesFile, "--no-ledger", "--offline"); r.code != exitUsage {
		t.Errorf("--offline --no-ledger: exit %d, want %d", r.code, exitUsage)
	}
}

func TestSyncSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	b := startBigSync(t, 500)
	_ = b.cmd.Process.Kill() // SIGKILL: no cleanup of any kind
	_ = b.cmd.Wait()
	b.checkMidRun(t)
	b.finish(t)
	if probs, r := verifyJSON(t, "--images", b.images, "--ledger", b.ledger, "--deep"); r.code != 0 || len(probs) != 0 {
		t.Fatalf("verify after the interrupted run: exit %d, problems %v", r.code, probs)
	}
}

// A blob the ledger believes present is gone: the manifest PUT is refused,
// the stale entries are dropped and the job is redone in the same run.
func TestStaleLedgerHeals(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		_, rawA := src.PushRandomImage(t, "lib/a", "1", linuxAmd64, 1, 4000, true, 21)
		// lib/a:2 shares the layer of lib/a:1 with a config of its own.
		var m map[string]any
		_ = json.Unmarshal(rawA, &m)
		config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"v":"2"}}}`)
		m["config"] = map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": src.PushBlob(t, "lib/a", config), "size": len(config)}
		rawA2, _ := json.Marshal(m)
		a2 := src.PushManifest(t, "lib/a", "2", "application/vnd.oci.image.manifest.v1+json", rawA2)
		layer := m["layers"].([]any)[0].(map[string]any)["digest"].(string)

		dir := t.TempDir()
		ledger := filepath.Join(dir, "ledger.jsonl")
		first := writeFile(t, dir, "first.yaml", fmt.Sprintf("%s/lib/a:1: %s/lib/a\n", src.Host, dst.Host))
		if r := runCLI(t, nil, "--images", first, "--ledger", ledger); r.code != 0 {
			t.Fatal("sync failed")
		}
		dst.DeleteBlob(t, "lib/a", layer) // behind the ledger's back

		dst.Log.Reset()
		second := writeFile(t, dir, "second.yaml", fmt.Sprintf("%s/lib/a:2: %s/lib/a\n", src.Host, dst.Host))
		r := runCLI(t, nil, "--images", second, "--ledger", ledger, "--retries", "0")
		if r.code != 0 || !strings.Contains(r.stderr, "contradicts the ledger") {
			t.Fatalf("exit %d; want 0 after healing", r.code)
		}
		assertDigest(t, dst, "lib/a", "2", a2)
		if !dst.HasBlob(t, "lib/a", layer) {
			t.Fatal("layer not restored")
		}
		// First the ledger was believed (no HEAD of the layer), then the
		// copy was redone without it.
		if dst.Log.Count("PUT", "/manifests/2$") != 2 || uploadsPerDigest(dst)[layer] != 1 {
			t.Errorf("manifest PUTs %d, layer uploads %d; want 2 and 1", dst.Log.Count("PUT", "/manifests/2$"), uploadsPerDigest(dst)[layer])
		}
	})
}

// What one run uploaded, the next run mounts into another repository from
// the ledger's knowledge, and --refresh asks the destination again.
func TestLedgerAcrossRuns(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	d, raw := src.PushRandomImage(t, "lib/app", "1", linuxAmd64, 3, 2000, true, 161)
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.jsonl")
	first := writeFile(t, dir, "first.yaml", fmt.Sprintf("%s/lib/app:1: %s/team-a/app\n", src.Host, dst.Host))
	if r := runCLI(t, nil, "--images", first, "--ledger", ledger); r.code != 0 {
		t.Fatal("first sync failed")
	}
	dst.Log.Reset()
	second := writeFile(t, dir, "second.yaml", fmt.Sprintf("%s/lib/app:1: %s/team-b/app\n", src.Host, dst.Host))
	if r := runCLI(t, nil, "--images", second, "--ledger", ledger); r.code != 0 {
		t.Fatal("second sync failed")
	}
	assertDigest(t, dst, "team-b/app", "1", d)
	if ups := uploadsPerDigest(dst); len(ups) != 0 {
		t.Errorf("blobs uploaded again instead of mounted: %v", ups)
	}
	var m struct{ Layers []struct{ Digest string } }
	_ = json.Unmarshal(raw, &m)
	mounts := 0
	for _, q := range dst.Log.All() {
		if q.Method == "POST" && strings.Contains(q.RawQuery, "from=team-a") && q.Status == 201 {
			mounts++
		}
	}
	if mounts != len(m.Layers)+1 {
		t.Errorf("%d mounts from team-a, want %d (config and layers)", mounts, len(m.Layers)+1)
	}

	// --refresh: every destination asked, the ledger rewritten.
	dst.Log.Reset()
	if r := runCLI(t, nil, "--images", second, "--ledger", ledger, "--trust-ledger"); r.code != 0 || len(dst.Log.All()) != 0 {
		t.Fatalf("no-op with the ledger: exit %d, %d destination requests", r.code, len(dst.Log.All()))
	}
	before := ledgerEntry(t, ledger, dst.Host+"/team-b/app:1")
	if r := runCLI(t, nil, "--images", second, "--ledger", ledger, "--refresh"); r.code != 0 {
		t.Fatal("refresh failed")
	}
	if n := dst.Log.Count("HEAD", "/manifests/1$"); n != 1 {
		t.Errorf("--refresh sent %d manifest HEADs to the destination, want 1", n)
	}
	if after := ledgerEntry(t, ledger, dst.Host+"/team-b/app:1"); after.Digest != d || !after.Time.After(before.Time) {
		t.Errorf("--refresh did not record what it found: %+v, before %+v", after, before)
	}
}
