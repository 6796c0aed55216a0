package layout

// OwnTruth reports that a layout is the truth about what it holds: a store
// that answers from its own files needs no ledger and no confirming
// request, and names an image pushed by digest in index.json ("@digest").
func (r *Repo) OwnTruth() bool { return true }
