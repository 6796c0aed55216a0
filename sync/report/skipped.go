package report

import (
	"errors"

	"github.com/imagesync/imagesync/internal/cfgfile"
)

// SkippedRule is a rule --skip-invalid-rules set aside, as -o json lists it:
// where it is and why a strict run would have refused the file.
type SkippedRule struct {
	File  string `json:"file,omitempty"`
	Line  int    `json:"line,omitempty"`
	Key   string `json:"key,omitempty"`
	Error string `json:"error"`
}

// SkippedImage is an image of a cluster that --from-cluster did not
// mirror: where it is used and why.
type SkippedImage struct {
	Kind      string `json:"kind"` // pod, deployment, …
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Container string `json:"container"`
	Image     string `json:"image"`
	Error     string `json:"error"`
}

// SkippedRules turns the errors of rules set aside into report entries, in
// their order (an error without a position keeps only its message).
func SkippedRules(errs []error) []SkippedRule {
	var out []SkippedRule
	for _, err := range errs {
		r := SkippedRule{Error: err.Error()}
		var ce *cfgfile.Error
		if errors.As(err, &ce) {
			r.File, r.Line, r.Key, r.Error = ce.File, ce.Line, ce.Key, ce.Msg
		}
		out = append(out, r)
	}
	return out
}
