// Package report turns engine results into what people and scripts read:
// a line per finished image, a summary, and image-syncer's success/failed
// image files.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/rules"
)

// Line formats one job result.
func Line(r engine.JobResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %s → %s", r.Action, r.Job.Source, r.Job.Destination)
	if r.Digest != "" && r.Action != engine.Failed {
		fmt.Fprintf(&b, " %s", shortDigest(r.Digest))
		if r.SourceDigest != "" && r.SourceDigest != r.Digest {
			fmt.Fprintf(&b, " (index rewritten by the platform filter; source %s)", shortDigest(r.SourceDigest))
		}
	}
	if r.Bytes > 0 {
		fmt.Fprintf(&b, " %s", Bytes(r.Bytes))
	}
	switch {
	case r.Attempts > 1 && r.Action == engine.Failed:
		fmt.Fprintf(&b, " (after %d attempts)", r.Attempts)
	case r.Attempts > 1:
		fmt.Fprintf(&b, " (attempt %d)", r.Attempts)
	}
	if r.Subject != "" {
		fmt.Fprintf(&b, " (referrer %s of %s)", r.ArtifactType, shortDigest(r.Subject))
	}
	if r.Err != nil {
		fmt.Fprintf(&b, ": %s", r.Err) // the job it concerns is r.Job, at the start of the line
	}
	return b.String()
}

// Summary prints the totals of a run; an interrupted run says so first and
// counts the jobs it never started.
func Summary(w io.Writer, s engine.Summary) {
	prefix, notStarted := "", ""
	if s.Interrupted {
		prefix = "interrupted: "
	}
	if s.NotStarted > 0 {
		notStarted = fmt.Sprintf(", %d not started", s.NotStarted)
	}
	if s.Waiting > 0 {
		notStarted += fmt.Sprintf(", %d waiting (--min-age)", s.Waiting)
	}
	if s.Deleted > 0 {
		notStarted += fmt.Sprintf(", %d deleted (--prune)", s.Deleted)
	}
	fmt.Fprintf(w, "%s%d copied, %d skipped, %d filtered, %d failed%s; %s uploaded (%d blobs, %d mounted); %d requests, %d retried; %s\n",
		prefix, s.Copied, s.Skipped, s.Filtered, s.Failed, notStarted, Bytes(s.Bytes), s.BlobsUploaded, s.BlobsMounted, s.Requests, s.Retries, s.Duration.Round(10*time.Millisecond))
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// Bytes formats a byte count with binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// SuccessImages maps source → destinations now in sync (copied or already
// there): the shape of an images file, so it can be fed back in.
func SuccessImages(results []engine.JobResult) map[string][]string {
	out := map[string][]string{}
	for _, r := range results {
		// Referrers travel with their image: the image's entry stands for them.
		if (r.Action == engine.Copied || r.Action == engine.Skipped || r.Action == engine.Deleted) && r.Subject == "" {
			k := r.Job.Source.String()
			d := r.Job.Destination.String()
			if rules.IsLayout(r.Job.Destination.Registry) {
				d = r.Job.Destination.Registry // as a rule writes it: oci:DIR (the image keeps its name)
			}
			out[k] = append(out[k], d)
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// FailedImages maps source → destination → reason.
func FailedImages(results []engine.JobResult) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, r := range results {
		if r.Action != engine.Failed {
			continue
		}
		src, dst := r.Job.Source, r.Job.Destination
		if r.Subject != "" {
			// A referrer by digest alone: a key the rule file can take.
			src.Tag, dst.Tag, dst.Digest = "", "", ""
		}
		k := src.String()
		if out[k] == nil {
			out[k] = map[string]string{}
		}
		reason := "failed"
		if r.Err != nil {
			reason = r.Err.Error()
		}
		out[k][dst.String()] = reason
	}
	return out
}

// WriteFile writes v as json or yaml to path, replacing it atomically.
func WriteFile(path, format string, v any) error { return WriteFileRedacted(path, format, v, nil) }

// WriteFileRedacted is WriteFile with the text passed through redact (nil:
// as it is) before it is written. The file is private to the user (0600):
// its reasons quote registry answers.
func WriteFileRedacted(path, format string, v any, redact func(string) string) error {
	var data []byte
	var err error
	switch format {
	case "json":
		data, err = json.MarshalIndent(v, "", "  ")
		data = append(data, '\n')
	case "yaml", "":
		data, err = yaml.Marshal(v)
	default:
		return fmt.Errorf("unknown output format %q (json or yaml)", format)
	}
	if err != nil {
		return err
	}
	if redact != nil {
		data = []byte(redact(string(data)))
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".imagesync-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// SyncJob is one row of `imagesync sync -o json`.
type SyncJob struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Action      string `json:"action"` // copied, skipped, filtered, failed; wait (--min-age), deleted (--prune)
	Digest      string `json:"digest,omitempty"`
	Bytes       int64  `json:"bytes"`   // blob bytes uploaded for this destination
	Retries     int    `json:"retries"` // attempts after the first
	Error       string `json:"error,omitempty"`
	// Rewrite: a platform filter rewrote the index (Digest is the new one).
	Rewrite      bool   `json:"rewrite,omitempty"`
	SourceDigest string `json:"sourceDigest,omitempty"`
	// Subject is set on referrers: the digest they refer to.
	Subject      string `json:"subject,omitempty"`
	ArtifactType string `json:"artifactType,omitempty"`
	// Wait is the time left of a job held back by --min-age ("12m0s").
	Wait string `json:"wait,omitempty"`
}

// SyncReport is the document `imagesync sync -o json` prints on stdout.
type SyncReport struct {
	Jobs []SyncJob `json:"jobs"`
	// SkippedRules are the rules --skip-invalid-rules set aside: no job
	// came from them.
	SkippedRules []SkippedRule `json:"skippedRules,omitempty"`
	// SkippedImages are the cluster's images --from-cluster left out.
	SkippedImages []SkippedImage `json:"skippedImages,omitempty"`
	// PullQuota lists the registries that reported a pull quota (Docker
	// Hub): what is left and what this run pulled.
	PullQuota []PullQuota `json:"pullQuota,omitempty"`
	Summary   struct {
		Copied        int     `json:"copied"`
		Skipped       int     `json:"skipped"`
		Filtered      int     `json:"filtered"`
		Waiting       int     `json:"waiting"` // held back by --min-age
		Deleted       int     `json:"deleted"` // --prune
		Failed        int     `json:"failed"`
		NotStarted    int     `json:"notStarted"`            // interrupted before they started (listed as failed jobs)
		Interrupted   bool    `json:"interrupted,omitempty"` // Ctrl-C
		Bytes         int64   `json:"bytes"`
		BlobsUploaded int64   `json:"blobsUploaded"`
		BlobsMounted  int64   `json:"blobsMounted"`
		Requests      int64   `json:"requests"`
		Retries       int64   `json:"retries"`
		ReadsResumed  int64   `json:"readsResumed,omitempty"` // source blob reads cut and resumed from the byte reached
		BytesReread   int64   `json:"bytesReread,omitempty"`  // source bytes read again to resume them (a registry that ignored Range)
		Seconds       float64 `json:"seconds"`
		SkippedImages int     `json:"skippedImages,omitempty"` // --from-cluster
	} `json:"summary"`
}

// syncJob is one job of the report (and of a --log-format json line).
func syncJob(r engine.JobResult) SyncJob {
	j := SyncJob{Source: r.Job.Source.String(), Destination: r.Job.Destination.String(), Action: string(r.Action), Digest: r.Digest, Bytes: r.Bytes, Retries: max(0, r.Attempts-1), Subject: r.Subject, ArtifactType: r.ArtifactType}
	if r.SourceDigest != "" && r.Digest != "" && r.SourceDigest != r.Digest && r.Action != engine.Failed {
		j.Rewrite, j.SourceDigest = true, r.SourceDigest
	}
	if r.Err != nil {
		j.Error = r.Err.Error()
	}
	if r.Action == engine.Failed {
		j.Digest = ""
	}
	if r.Action == engine.Waiting { // not an error: why is in the action
		j.Error, j.Wait = "", r.Wait.String()
	}
	return j
}

// LogLine is one line of --log-format json for what the text format prints
// as plain lines (a finished job, the progress, the summary): slog's time,
// level and msg keys, then the fields.
func LogLine(level, msg string, fields any) string {
	head, _ := json.Marshal(struct {
		Time  string `json:"time"`
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}{time.Now().Format(time.RFC3339Nano), level, msg})
	body, err := json.Marshal(fields)
	if err != nil || len(body) <= 2 || body[0] != '{' {
		return string(head)
	}
	return string(head[:len(head)-1]) + "," + string(body[1:])
}

// JobLogLine is a finished job as a --log-format json line.
func JobLogLine(r engine.JobResult) string {
	level := "INFO"
	if r.Action == engine.Failed {
		level = "ERROR"
	}
	return LogLine(level, "job", syncJob(r))
}

// SummaryLogLine is the summary as a --log-format json line: the fields of
// -o json's summary.
func SummaryLogLine(res *engine.Result) string {
	rep := NewSyncReport(res)
	return LogLine("INFO", "summary", rep.Summary)
}

// NewSyncReport collects a finished sync, sorted by source then destination.
func NewSyncReport(res *engine.Result) SyncReport {
	rep := SyncReport{Jobs: []SyncJob{}}
	for _, r := range res.Jobs {
		rep.Jobs = append(rep.Jobs, syncJob(r))
	}
	sort.SliceStable(rep.Jobs, func(a, b int) bool {
		if rep.Jobs[a].Source != rep.Jobs[b].Source {
			return rep.Jobs[a].Source < rep.Jobs[b].Source
		}
		return rep.Jobs[a].Destination < rep.Jobs[b].Destination
	})
	s := res.Summary
	rs := &rep.Summary
	rs.Copied, rs.Skipped, rs.Filtered, rs.Failed = s.Copied, s.Skipped, s.Filtered, s.Failed
	rs.NotStarted, rs.Interrupted, rs.Waiting, rs.Deleted = s.NotStarted, s.Interrupted, s.Waiting, s.Deleted
	rs.Bytes, rs.BlobsUploaded, rs.BlobsMounted, rs.Requests, rs.Retries = s.Bytes, s.BlobsUploaded, s.BlobsMounted, s.Requests, s.Retries
	rs.ReadsResumed, rs.BytesReread = s.ReadsResumed, s.BytesReread
	rs.Seconds = s.Duration.Seconds()
	return rep
}

// WriteJSON prints the report as one JSON document.
func (r SyncReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
