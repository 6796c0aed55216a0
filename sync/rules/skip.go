package rules

import (
	"fmt"

	"github.com/imagesync/imagesync/internal/cfgfile"
)

// Skipping invalid rules (--skip-invalid-rules): every error a strict load
// reports is still reported, word for word, but it sets aside the rule it
// concerns instead of the whole file. A file that cannot be read or decoded,
// or is not a map, is still an error of its own.

// LoadFileSkipping is LoadFile that keeps the valid rules: it returns them
// with the errors of the rules it set aside (skipped). A duplicate key sets
// aside every rule under that key (which one was meant is not known).
func LoadFileSkipping(path string, opt Options) (valid []Rule, skipped ErrorList, err error) {
	n, err := cfgfile.LoadKeepDuplicates(path)
	if err != nil {
		return nil, nil, ErrorList{err}
	}
	return FromNodeSkipping(path, n, opt)
}

// FromNodeSkipping is FromNode that keeps the valid rules (see
// LoadFileSkipping). n may hold repeated keys (cfgfile.LoadKeepDuplicates).
func FromNodeSkipping(file string, n *cfgfile.Node, opt Options) (valid []Rule, skipped ErrorList, err error) {
	if n == nil || n.Kind == cfgfile.Null {
		return nil, nil, nil
	}
	if n.Kind != cfgfile.Map {
		_, err := FromNode(file, n, opt)
		return nil, nil, err
	}
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
		r, errs := buildRule(file, kv, opt)
		if len(errs) > 0 {
			skipped = append(skipped, errs...)
			continue
		}
		valid = append(valid, r)
	}
	return valid, skipped, nil
}

// CheckJobsSkipping is CheckJobs that keeps the jobs of the rules no
// conflict involves: both rules of a conflict are set aside (which one was
// meant is not known), each conflict reported as CheckJobs words it.
func CheckJobsSkipping(jobs []Job) ([]Job, ErrorList) {
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
	out, err := CheckJobs(keep) // deduplicates; no conflict is left
	if err != nil {
		errs = append(errs, err)
		return nil, errs
	}
	return out, errs
}
