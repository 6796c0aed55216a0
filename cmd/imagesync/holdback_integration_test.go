package main

import (
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// TestMinAge: with --min-age 2s a new tag is "wait" (plan and sync) and not
// copied; a run 3 s later copies it; a tag that moves starts again.
func TestMinAge(t *testing.T) {
	t.Parallel()
	forEachKind(t, func(t *testing.T, kind registrytest.Kind) {
		src, dst := pair(t, kind, registrytest.Options{})
		first, _ := src.PushRandomImage(t, "lib/app", "v1", linuxAmd64, 1, 256, true, 8201)
		args := []string{src.Host + "/lib/app:v1", dst.Host + "/m/app", "--min-age", "2s"}

		r := runCLI(t, nil, append([]string{"plan"}, args...)...)
		if r.code != exitOK || !strings.Contains(r.stdout, "wait ") || !strings.Contains(r.stdout, "2s left") {
			t.Errorf("plan exit %d, want a wait row with the time left", r.code)
		}
		r = runCLI(t, nil, append([]string{"sync", "-o", "json"}, args...)...)
		if r.code != exitOK {
			t.Fatalf("first sync exit %d", r.code)
		}
		rep := parseSyncReport(t, r)
		if len(rep.Jobs) != 1 || rep.Jobs[0].Action != "wait" || rep.Jobs[0].Error != "" || rep.Summary["waiting"] != 1 || rep.Summary["copied"] != 0 {
			t.Errorf("first sync: %+v", rep)
		}
		if dst.HasManifest(t, "m/app", "v1") {
			t.Fatal("copied before its min-age")
		}

		time.Sleep(3 * time.Second)
		r = runCLI(t, nil, append([]string{"sync"}, args...)...)
		if r.code != exitOK || !strings.Contains(r.stderr, "1 copied") {
			t.Fatalf("sync 3 s later: exit %d", r.code)
		}
		assertDigest(t, dst, "m/app", "v1", first)

		// The tag moves: its clock starts again, the mirror keeps the old digest.
		src.PushRandomImage(t, "lib/app", "v1", linuxAmd64, 1, 256, false, 8202)
		r = runCLI(t, nil, append([]string{"sync"}, args...)...)
		if r.code != exitOK || !strings.Contains(r.stderr, "1 waiting") {
			t.Errorf("moved tag: exit %d, want it waiting", r.code)
		}
		assertDigest(t, dst, "m/app", "v1", first)

		// --no-ledger cannot count the age.
		if r := runCLI(t, nil, append([]string{"sync", "--no-ledger"}, args...)...); r.code != exitUsage || !strings.Contains(r.stderr, "--no-ledger") {
			t.Errorf("--no-ledger: exit %d", r.code)
		}
	})
}
