package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/imagesync/imagesync/sync/engine"
	"github.com/imagesync/imagesync/sync/rules"
)

// PlanJob is one row of `imagesync plan -o json`.
type PlanJob struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Action      string `json:"action"`           // copy, update, skip, filtered, error
	Digest      string `json:"digest,omitempty"` // the digest the destination would hold
	Bytes       int64  `json:"bytes"`            // blob bytes a sync would upload (after mounts)
	Reason      string `json:"reason,omitempty"` // why filtered or error
	// Rewrite is set when a platform filter rewrote an index: Digest is the
	// new index's, SourceDigest the source's.
	Rewrite      bool   `json:"rewrite,omitempty"`
	SourceDigest string `json:"sourceDigest,omitempty"`
	// Subject is set on referrers (signatures, SBOMs…): the digest they refer to.
	Subject      string `json:"subject,omitempty"`
	ArtifactType string `json:"artifactType,omitempty"`
	// Immutable is set on a skip decided without any request: the tag is
	// immutable and the ledger saw it copied. The table says "skip (immutable)".
	Immutable bool `json:"immutable,omitempty"`
}

// PlanFilter says what the tag filters of one rule removed.
type PlanFilter struct {
	Rule   string             `json:"rule"` // FILE:LINE key, or the one-off source
	Source string             `json:"source"`
	Steps  []rules.FilterStep `json:"steps"`
}

// PlanSummary counts a plan.
type PlanSummary struct {
	Copy     int   `json:"copy"`
	Update   int   `json:"update"`
	Skip     int   `json:"skip"`
	Filtered int   `json:"filtered"`
	Wait     int   `json:"wait"`   // held back by --min-age
	Delete   int   `json:"delete"` // --prune
	Error    int   `json:"error"`
	Bytes    int64 `json:"bytes"`
	// SkippedImages counts the cluster's images --from-cluster left out.
	SkippedImages int `json:"skippedImages,omitempty"`
}

// Plan is the document `imagesync plan -o json` prints.
type Plan struct {
	Jobs    []PlanJob    `json:"jobs"`
	Filters []PlanFilter `json:"filters,omitempty"`
	// SkippedRules are the rules --skip-invalid-rules set aside.
	SkippedRules []SkippedRule `json:"skippedRules,omitempty"`
	// SkippedImages are the cluster's images --from-cluster left out.
	SkippedImages []SkippedImage `json:"skippedImages,omitempty"`
	// PullQuota lists the registries that reported a pull quota (Docker
	// Hub): what is left and the pulls a sync of this plan needs.
	PullQuota []PullQuota `json:"pullQuota,omitempty"`
	Summary   PlanSummary `json:"summary"`
}

// NewPlan turns dry-run results into a plan, sorted by source then destination.
func NewPlan(res *engine.Result) Plan {
	p := Plan{Jobs: []PlanJob{}}
	for _, r := range res.Jobs {
		j := PlanJob{Source: r.Job.Source.String(), Destination: r.Job.Destination.String(), Digest: r.Digest, Bytes: r.Bytes, Subject: r.Subject, ArtifactType: r.ArtifactType, Immutable: r.Immutable}
		if r.SourceDigest != "" && r.Digest != "" && r.SourceDigest != r.Digest {
			j.Rewrite, j.SourceDigest = true, r.SourceDigest
		}
		// The plan's word for each action, and the count it adds to.
		rows := map[engine.Action]struct {
			word  string
			count *int
		}{
			engine.WouldCopy:   {"copy", &p.Summary.Copy},
			engine.WouldUpdate: {"update", &p.Summary.Update},
			engine.Skipped:     {"skip", &p.Summary.Skip},
			engine.Filtered:    {"filtered", &p.Summary.Filtered},
			engine.Waiting:     {"wait", &p.Summary.Wait},
			engine.WouldDelete: {"delete", &p.Summary.Delete},
		}
		row, ok := rows[r.Action]
		if !ok {
			row.word, row.count = "error", &p.Summary.Error
		}
		j.Action = row.word
		*row.count++
		if r.Err != nil { // the row names the job already
			j.Reason = r.Err.Error()
		}
		if j.Action == "error" || j.Action == "filtered" {
			j.Digest, j.Rewrite, j.SourceDigest = "", false, ""
		}
		p.Summary.Bytes += j.Bytes
		p.Jobs = append(p.Jobs, j)
	}
	sort.SliceStable(p.Jobs, func(a, b int) bool {
		if p.Jobs[a].Source != p.Jobs[b].Source {
			return p.Jobs[a].Source < p.Jobs[b].Source
		}
		return p.Jobs[a].Destination < p.Jobs[b].Destination
	})
	return p
}

// Pending reports whether a sync would change anything.
func (p Plan) Pending() bool { return p.Summary.Copy+p.Summary.Update+p.Summary.Delete > 0 }

// WriteJSON prints the plan as one JSON document.
func (p Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// WriteTable prints the plan for people: one row per job, its columns sized
// by the names only; a reason (why filtered, the error) goes on its own
// indented line under its row. No line ends in spaces. The table is built
// whole and written once: a redacting writer sees every line entire.
func (p Plan) WriteTable(w io.Writer) error { return p.WriteTableFit(w, 0, false) }

// WriteTableFit prints the table for a terminal of width columns (0: no
// limit): the references give way (each keeping its end) so that every
// row fits, as kubectl's tables do; wide prints them whole with full
// digests (-o wide).
func (p Plan) WriteTableFit(w io.Writer, width int, wide bool) error {
	digest := shortDigest
	if wide {
		digest = func(d string) string { return d }
	}
	rows := [][]string{{"ACTION", "SOURCE", "DESTINATION", "DIGEST", "BYTES"}}
	for _, j := range p.Jobs {
		size := ""
		if j.Action == "copy" || j.Action == "update" {
			size = Bytes(j.Bytes)
		}
		action := j.Action
		if j.Immutable {
			action += " (immutable)"
		}
		rows = append(rows, []string{action, j.Source, j.Destination, digest(j.Digest), size})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	if width > 0 && !wide {
		fitColumns(rows, widths, width, 1, 2)
	}
	var b strings.Builder
	for n, r := range rows {
		var line strings.Builder
		for i, c := range r {
			if i > 0 {
				line.WriteString("  ")
			}
			line.WriteString(c)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
		if n == 0 {
			continue
		}
		j := p.Jobs[n-1]
		var notes []string
		if j.Rewrite {
			notes = append(notes, fmt.Sprintf("rewrite: the platform filter writes a new index %s (source %s)", digest(j.Digest), digest(j.SourceDigest)))
		}
		if j.Subject != "" {
			notes = append(notes, fmt.Sprintf("referrer (%s) of %s", j.ArtifactType, digest(j.Subject)))
		}
		if j.Reason != "" {
			notes = append(notes, strings.Split(j.Reason, "\n")...)
		}
		for _, l := range notes {
			b.WriteString("    ")
			b.WriteString(strings.TrimRight(l, " \t\r"))
			b.WriteByte('\n')
		}
	}
	for _, f := range p.Filters {
		fmt.Fprintf(&b, "\ntag filters of %s (%s):\n", f.Rule, f.Source)
		for _, st := range f.Steps {
			removed := strings.Join(st.Removed, ", ")
			if removed == "" {
				removed = "nothing"
			}
			fmt.Fprintf(&b, "  %-9s removed %s\n", st.Filter, removed)
		}
	}
	s := p.Summary
	waiting := ""
	if s.Wait > 0 {
		waiting = fmt.Sprintf(", %d waiting (--min-age)", s.Wait)
	}
	if s.Delete > 0 {
		waiting += fmt.Sprintf(", %d to delete (--prune)", s.Delete)
	}
	errs := "errors"
	if s.Error == 1 {
		errs = "error"
	}
	fmt.Fprintf(&b, "\n%d to copy, %d to update, %d in sync, %d filtered, %d %s%s; %s to upload\n",
		s.Copy, s.Update, s.Skip, s.Filtered, s.Error, errs, waiting, Bytes(s.Bytes))
	writePlanQuota(&b, p.PullQuota)
	_, err := io.WriteString(w, b.String())
	return err
}

// Verify statuses: the destination matches, differs, was left out by the
// filters (nothing looked for), or could not be checked (the source tag is
// gone, the network failed, nothing in the ledger to compare with).
const (
	VerifyOK       = "ok"
	VerifyMismatch = "mismatch"
	VerifyFiltered = "filtered"
	VerifyError    = "error"
)

// VerifyJob is one row of `imagesync verify -o json`.
type VerifyJob struct {
	Source      string           `json:"source"`
	Destination string           `json:"destination"`
	Status      string           `json:"status"`
	OK          bool             `json:"ok"` // status ok or filtered
	Want        string           `json:"want,omitempty"`
	Got         string           `json:"got,omitempty"`
	Reason      string           `json:"reason,omitempty"` // filtered: why
	Problems    []engine.Problem `json:"problems,omitempty"`
}

// Verification is the document `imagesync verify -o json` prints.
type Verification struct {
	Jobs    []VerifyJob `json:"jobs"`
	Summary struct {
		OK       int `json:"ok"`
		Mismatch int `json:"mismatch"`
		Filtered int `json:"filtered"`
		Error    int `json:"error"`
	} `json:"summary"`
}

// Failed counts the destinations that differ or could not be checked.
func (v Verification) Failed() int { return v.Summary.Mismatch + v.Summary.Error }

// verifyStatus classifies a result: only problems the check itself met
// (ProblemError, ProblemUnknown) leave it unchecked rather than different.
func verifyStatus(r engine.VerifyResult) string {
	switch {
	case r.Filtered != "":
		return VerifyFiltered
	case r.OK():
		return VerifyOK
	}
	for _, p := range r.Problems {
		if p.Kind != engine.ProblemError && p.Kind != engine.ProblemUnknown {
			return VerifyMismatch
		}
	}
	return VerifyError
}

// NewVerification collects verify results.
func NewVerification(rs []engine.VerifyResult) Verification {
	v := Verification{Jobs: []VerifyJob{}}
	for _, r := range rs {
		j := VerifyJob{Source: r.Job.Source.String(), Destination: r.Job.Destination.String(), Status: verifyStatus(r), OK: r.OK(), Want: r.Want, Got: r.Got, Reason: r.Filtered, Problems: r.Problems}
		switch j.Status {
		case VerifyOK:
			v.Summary.OK++
		case VerifyFiltered:
			v.Summary.Filtered++
		case VerifyMismatch:
			v.Summary.Mismatch++
		default:
			v.Summary.Error++
		}
		v.Jobs = append(v.Jobs, j)
	}
	sort.SliceStable(v.Jobs, func(a, b int) bool { return v.Jobs[a].Destination < v.Jobs[b].Destination })
	return v
}

// WriteJSON prints the verification as one JSON document.
func (v Verification) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteTable prints the verification for people: one line per destination,
// one more per problem.
func (v Verification) WriteTable(out io.Writer) error {
	w := &bytes.Buffer{} // written once: a redacting writer sees every line entire
	for _, j := range v.Jobs {
		status := j.Status
		if status != VerifyOK && status != VerifyFiltered {
			status = strings.ToUpper(status) // what needs a look stands out
		}
		line := fmt.Sprintf("%-8s %s → %s", status, j.Source, j.Destination)
		switch {
		case j.Want != "":
			line += " " + shortDigest(j.Want)
		case j.Reason != "":
			line += ": " + j.Reason
		}
		fmt.Fprintln(w, line)
		for _, p := range j.Problems {
			fmt.Fprintf(w, "         %s %s", p.Kind, p.Ref)
			if p.Detail != "" {
				fmt.Fprintf(w, ": %s", p.Detail)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "\n%d match, %d differ", v.Summary.OK, v.Summary.Mismatch)
	if v.Summary.Error > 0 {
		fmt.Fprintf(w, ", %d not checked", v.Summary.Error)
	}
	if v.Summary.Filtered > 0 {
		fmt.Fprintf(w, ", %d filtered", v.Summary.Filtered)
	}
	fmt.Fprintln(w)
	_, err := out.Write(w.Bytes())
	return err
}

// AddFilters records what the tag filters of each rule removed in the last
// expansion.
func (p *Plan) AddFilters(rs []rules.Rule) {
	for i := range rs {
		r := &rs[i]
		if len(r.Steps) == 0 {
			continue
		}
		where := r.Key
		if r.File != "" {
			where = fmt.Sprintf("%s:%d %s", r.File, r.Line, r.Key)
		}
		p.Filters = append(p.Filters, PlanFilter{Rule: where, Source: r.Source.Registry + "/" + r.Source.Repository, Steps: r.Steps})
	}
}

// fitColumns narrows the columns shrink (the references) until a row of
// widths, two spaces apart, fits in width: the widest first, none below
// 16 columns; the cells cut keep their ends ("…/mirror/app:1.0").
func fitColumns(rows [][]string, widths []int, width int, shrink ...int) {
	total := 2 * (len(widths) - 1)
	for _, w := range widths {
		total += w
	}
	for total > width {
		widest := -1
		for _, i := range shrink {
			if widths[i] > 16 && (widest < 0 || widths[i] > widths[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break // as narrow as it goes: the terminal wraps the rest
		}
		widths[widest]--
		total--
	}
	for _, r := range rows[1:] {
		for _, i := range shrink {
			r[i] = tail(r[i], widths[i])
		}
	}
}
