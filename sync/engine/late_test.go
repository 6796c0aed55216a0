package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagesync/imagesync/sync/rules"
)

// A job whose archive cannot be written at the end of the run fails after
// its result was reported: it is marked Late (the CLI prints it again with
// its reason) and carries the reason.
func TestArchiveFailureIsLate(t *testing.T) {
	src, _ := memRegistry(t)
	img, _ := random.Image(256, 1)
	if err := remote.Write(mustRef(t, src+"/ns/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "out.tar")
	r := ruleFor(t, src+"/ns/app:v1", "oci-archive:"+file)
	var reported []JobResult
	e := newEngine(t, Options{})
	e.Observe(func(jr JobResult) {
		reported = append(reported, jr)
		// The archive's path becomes a directory with something in it: the
		// rename at the end of the run fails.
		_ = os.MkdirAll(filepath.Join(file, "x"), 0o755)
	}, nil, nil)
	ctx := context.Background()
	jobs, _, err := e.Expand(ctx, []rules.Rule{r})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Sync(ctx, jobs, nil)
	defer e.Close()
	if len(reported) != 1 || reported[0].Action != Copied {
		t.Fatalf("reported %+v, want the job copied", reported)
	}
	if len(res.Jobs) != 1 || res.Jobs[0].Action != Failed || !res.Jobs[0].Late || res.Jobs[0].Err == nil || !strings.Contains(res.Jobs[0].Err.Error(), "writing "+file) {
		t.Fatalf("result %+v, want a late failure naming the archive", res.Jobs)
	}
	if res.Summary.Failed != 1 {
		t.Errorf("summary %+v", res.Summary)
	}
}
