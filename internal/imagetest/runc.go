package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// EnvRunc names the runc binary scripts/test-deps.sh installs (Debian's).
const EnvRunc = "IMAGESYNC_RUNC"

// EnvRequireNode makes a missing runc (or kubelet, containerd) a failure
// instead of a skip; scripts/test.sh sets it where test-deps.sh installed them.
const EnvRequireNode = "IMAGESYNC_REQUIRE_NODE"

// Runc returns the runc binary, or skips (fails with IMAGESYNC_REQUIRE_NODE=1)
// when there is none or the test does not run as root.
func Runc(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("imagetest: no containers under -short")
	}
	p := os.Getenv(EnvRunc)
	if p == "" {
		p, _ = exec.LookPath("runc")
	}
	why := ""
	switch {
	case p == "":
		why = "runc not found (scripts/test-deps.sh installs Debian's; " + EnvRunc + ")"
	case os.Geteuid() != 0:
		why = "runc needs root here (no rootless setup)"
	}
	if why != "" {
		if os.Getenv(EnvRequireNode) == "1" {
			t.Fatalf("imagetest: %s (%s=1)", why, EnvRequireNode)
		}
		t.Skipf("imagetest: %s", why)
	}
	return p
}

// Result is how a container ended.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs img's container with runc as the image says (its user, its env,
// args[0] looked up on its PATH) the way job's pods run it: read-only root
// filesystem, every capability dropped, no new privileges, a writable /tmp,
// in the host's network namespace (loopback registries are reachable), and
// returns its output. extraEnv is added to the image's environment.
func Run(t testing.TB, runc string, img v1.Image, args []string, extraEnv ...string) Result {
	t.Helper()
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := extract(img, rootfs); err != nil {
		t.Fatalf("imagetest: unpack the image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, err := parseUser(cf.Config.User)
	if err != nil {
		t.Fatalf("imagetest: image user %q: %v", cf.Config.User, err)
	}
	spec := runtimeSpec(args, append(append([]string(nil), cf.Config.Env...), extraEnv...), uid, gid)
	b, _ := json.MarshalIndent(spec, "", "  ")
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	name := "imagetest-" + hex.EncodeToString(id)
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, runc, "--root", state, "run", "--bundle", bundle, name)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	// Whatever happened, nothing of it stays behind.
	_ = exec.Command(runc, "--root", state, "delete", "--force", name).Run()
	r := Result{Code: cmd.ProcessState.ExitCode(), Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("imagetest: runc run: %v\n%s", err, r.Stderr)
	}
	t.Logf("runc: %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	return r
}

func parseUser(u string) (uid, gid int, err error) {
	us, gs, ok := strings.Cut(u, ":")
	if uid, err = strconv.Atoi(us); err != nil {
		return 0, 0, fmt.Errorf("want a numeric uid (the image has no /etc/passwd lookups here)")
	}
	gid = uid
	if ok {
		if gid, err = strconv.Atoi(gs); err != nil {
			return 0, 0, fmt.Errorf("want a numeric gid")
		}
	}
	return uid, gid, nil
}

// runtimeSpec is an OCI runtime configuration (the subset runc needs).
func runtimeSpec(args, env []string, uid, gid int) map[string]any {
	none := []string{}
	return map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"terminal": false,
			"user":     map[string]any{"uid": uid, "gid": gid},
			"args":     args,
			"env":      env,
			"cwd":      "/",
			"capabilities": map[string]any{
				"bounding": none, "effective": none, "inheritable": none, "permitted": none, "ambient": none,
			},
			"noNewPrivileges": true,
		},
		"root":     map[string]any{"path": "rootfs", "readonly": true},
		"hostname": "imagetest",
		"mounts": []map[string]any{
			{"destination": "/proc", "type": "proc", "source": "proc"},
			{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": []string{"nosuid", "noexec", "nodev", "ro"}},
			{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "nodev", "mode=1777", "size=262144k"}},
		},
		"linux": map[string]any{
			// No network namespace: the host's loopback registries are reachable, as with hostNetwork.
			"namespaces":    []map[string]any{{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}},
			"maskedPaths":   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"},
			"readonlyPaths": []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// extract writes the image's flattened filesystem into root: regular files
// and directories only, names that stay inside root.
func extract(img v1.Image, root string) error {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		p := filepath.Join(root, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(p, os.FileMode(h.Mode).Perm()|modeBits(h.Mode)); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, os.FileMode(h.Mode).Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: entry type %c not expected in a test image", h.Name, h.Typeflag)
		}
		if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
			return err
		}
	}
}

// modeBits keeps the sticky bit of a tar mode (/tmp is 1777).
func modeBits(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}
