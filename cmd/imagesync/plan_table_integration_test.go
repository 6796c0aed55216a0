package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/registrytest"
)

// plan against real registries: a missing tag is said in words, on its own
// indented line, and does not widen the table.
func TestPlanTableWithAnErrorRow(t *testing.T) {
	t.Parallel()
	src, dst := pair(t, registrytest.Distribution3, registrytest.Options{})
	src.PushRandomImage(t, "ux/app", "1.0", linuxAmd64, 1, 256, false, 7)
	dir := t.TempDir()
	images := writeFile(t, dir, "images.yaml", fmt.Sprintf("%[1]s/ux/app:1.0: %[2]s/ux/app\n%[1]s/ux/nope:1.0: %[2]s/ux/nope\n", src.Host, dst.Host))
	r := runCLI(t, nil, "plan", "--images", images, "--no-ledger")
	if r.code != exitSomeFail {
		t.Fatalf("exit %d, want %d", r.code, exitSomeFail)
	}
	lines := strings.Split(r.stdout, "\n")
	want := "    tag 1.0 not found in " + src.Host + "/ux/nope"
	found := false
	for _, l := range lines {
		found = found || l == want
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing spaces: %q", l)
		}
		if !strings.HasPrefix(l, "    ") && len(l) > 110 { // two references of ~31 characters, action, digest, bytes
			t.Errorf("a row %d characters wide: %q", len(l), l)
		}
		if strings.Contains(l, "HEAD") || strings.Contains(l, "404") {
			t.Errorf("raw request in the plan: %q", l)
		}
	}
	if !found {
		t.Errorf("no line %q in:\n%s", want, r.stdout)
	}
}
