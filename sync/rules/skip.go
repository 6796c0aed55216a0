package rules

import (
	"fmt"

	"github.com/imagesync/imagesync/internal/cfgfile"
)

// SetAside is the skipping mode of loading and expanding rules
// (--skip-invalid-rules), given as Options.SetAside and to CheckJobs: an
// invalid rule is set aside and its errors added here, word for word what a
// strict load reports; the other rules go on. A duplicate key sets aside
// every rule under that key (which one was meant is not known). A file
// that cannot be read or decoded, or is not a map, is still an error of
// its own. Not safe for concurrent use: loading and expanding add to it
// one after the other.
type SetAside struct {
	Errs ErrorList
}

// Add records the errors of rules set aside.
func (s *SetAside) Add(errs ...error) { s.Errs = append(s.Errs, errs...) }

// fromNodeSkipping is FromNode in the skipping mode on a map: the valid
// rules, and the errors of those set aside.
func fromNodeSkipping(file string, n *cfgfile.Node, opt Options) (valid []Rule, skipped ErrorList) {
	again := map[string]int{} // key → line of its last repetition
	for _, kv := range n.Map {
		if kv.Dup > 0 {
			again[kv.Key] = kv.Line
		}
	}
	for _, kv := range n.Map {
		if line, ok := again[kv.Key]; ok {
			if kv.Dup > 0 {
				skipped = append(skipped, cfgfile.DuplicateError(file, kv))
			} else {
				skipped = append(skipped, &cfgfile.Error{File: file, Line: kv.Line, Key: kv.Key, Msg: fmt.Sprintf("duplicate key (defined again at line %d)", line)})
			}
			continue
		}
		r, errs := BuildRule(file, kv, opt)
		if len(errs) > 0 {
			skipped = append(skipped, errs...)
			continue
		}
		valid = append(valid, r)
	}
	return valid, skipped
}

// checkJobsSkipping is CheckJobs in the skipping mode: it keeps the jobs of
// the rules no conflict involves; both rules of a conflict are set aside
// (which one was meant is not known), each conflict reported as the strict
// mode words it.
func checkJobsSkipping(jobs []Job) ([]Job, ErrorList) {
	seen := map[[2]string]bool{}
	owner := map[string]Job{}
	bad := map[*Rule]bool{}
	named := map[*Rule]bool{} // rules an error names as its key
	var errs ErrorList
	var firsts []Job // the first writer of each conflict
	for _, j := range jobs {
		k := [2]string{j.Source.String(), j.Destination.String()}
		if seen[k] || j.Destination.Tag == "" {
			seen[k] = true
			continue
		}
		seen[k] = true
		d := j.Destination.String()
		if first, ok := owner[d]; ok {
			errs = append(errs, conflictError(first, j))
			bad[first.Rule], bad[j.Rule], named[j.Rule] = true, true, true
			firsts = append(firsts, first, j)
			continue
		}
		owner[d] = j
	}
	// The first writer is set aside too: say so under its own key.
	for i := 0; i < len(firsts); i += 2 {
		first, j := firsts[i], firsts[i+1]
		if named[first.Rule] {
			continue
		}
		named[first.Rule] = true
		errs = append(errs, ruleError(first.Rule, fmt.Sprintf("destination %q is also written from %q (%s)", first.Destination.String(), j.Source.String(), ruleWhere(j.Rule))))
	}
	var keep []Job
	for _, j := range jobs {
		if !bad[j.Rule] {
			keep = append(keep, j)
		}
	}
	out, err := CheckJobs(keep, nil) // deduplicates; no conflict is left
	if err != nil {
		errs = append(errs, err)
		return nil, errs
	}
	return out, errs
}
