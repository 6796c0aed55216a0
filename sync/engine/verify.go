package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/rules"
)

// Problem kinds verify reports.
const (
	ProblemMissing      = "missing"          // the destination reference does not exist
	ProblemDigest       = "different-digest" // it holds another digest
	ProblemMissingChild = "missing-child"    // an index child manifest is absent
	ProblemMissingBlob  = "missing-blob"     // a config or layer is absent
	ProblemCorruptBlob  = "corrupt-blob"     // --deep: the blob's bytes do not hash to its digest
	ProblemUnknown      = "unknown"          // nothing to compare with (--offline and not in the ledger)
	ProblemError        = "error"            // the check itself failed (network, auth)
)

// Problem is one thing verify found wrong with a destination.
type Problem struct {
	Kind   string `json:"kind"`
	Ref    string `json:"ref,omitempty"` // the manifest or blob concerned
	Detail string `json:"detail,omitempty"`
}

// VerifyResult is the check of one job.
type VerifyResult struct {
	Job      rules.Job
	Want     string // the digest the destination should hold
	Got      string // the digest it holds
	Problems []Problem
	Filtered string // why the filters leave the image out: nothing was looked for
}

// OK reports whether the destination matched.
func (v VerifyResult) OK() bool { return len(v.Problems) == 0 }

// VerifyOptions tune Verify.
type VerifyOptions struct {
	Deep    bool // download and re-hash every destination blob
	Offline bool // compare with the ledger instead of the source
}

// Verify checks every job's destination: the digest, every child manifest
// and every blob. A broken destination is marked in the ledger so that the
// next sync repairs it.
func (e *Engine) Verify(ctx context.Context, jobs []rules.Job, opt VerifyOptions) []VerifyResult {
	out := make([]VerifyResult, len(jobs))
	// The first Ctrl-C stops starting checks and cancels those in flight.
	ctx, cancel := e.stoppable(ctx)
	defer cancel()
	stopped := func() bool { return ctx.Err() != nil || closed(e.opt.Stop) }
	notChecked := func(j rules.Job) VerifyResult {
		return VerifyResult{Job: j, Problems: []Problem{{Kind: ProblemError, Ref: j.Destination.String(), Detail: "not checked: " + ErrInterrupted.Error()}}}
	}
	var g errgroup.Group
	g.SetLimit(e.opt.Concurrency)
	for i, j := range jobs {
		if stopped() {
			out[i] = notChecked(j)
			continue
		}
		g.Go(func() error {
			if stopped() { // while waiting for a slot
				out[i] = notChecked(j)
				return nil
			}
			defer func() {
				if p := recover(); p != nil {
					out[i] = VerifyResult{Job: j, Problems: []Problem{{Kind: ProblemError, Detail: fmt.Sprintf("internal error (please report it): %v", p)}}}
				}
			}()
			out[i] = e.verifyJob(ctx, j, opt)
			if ctx.Err() != nil && !out[i].OK() { // cut short: nothing was found wrong
				out[i] = notChecked(j)
				return nil
			}
			if !out[i].OK() && e.ledgerFor(j.Destination) != nil {
				key := ledgerKey(j, out[i].Want)
				if j.Source.Digest != "" {
					key = ledgerKey(j, j.Source.Digest)
				}
				_ = e.opt.Ledger.Invalidate(j.Destination.Repo(), key)
			}
			return nil
		})
	}
	_ = g.Wait() // problems are on the results
	return out
}

func (e *Engine) verifyJob(ctx context.Context, j rules.Job, opt VerifyOptions) VerifyResult {
	res := VerifyResult{Job: j}
	problem := func(kind, ref, detail string) VerifyResult {
		res.Problems = append(res.Problems, Problem{Kind: kind, Ref: ref, Detail: detail})
		return res
	}
	if opt.Deep && ownTruthAt(j.Source.Registry) {
		res.Problems = append(res.Problems, e.verifyLayoutSource(ctx, j)...)
	}

	// What the destination should hold; children a keep-index filter left
	// out are not looked for.
	seen := map[string]bool{}
	sparse := false
	if opt.Offline {
		srcDigest := j.Source.Digest
		key := j.Destination.Repo() + ":" + j.Destination.Tag
		if j.Destination.Tag == "" {
			key = j.Destination.Repo() + "@" + srcDigest
		}
		ent, ok := e.opt.Ledger.Manifest(key)
		if !ok {
			return problem(ProblemUnknown, key, "not in the ledger: sync it first, or verify against the source")
		}
		res.Want = ent.Digest
		sparse = strings.Contains(ent.Filter, "mode="+ModeKeepIndex)
	} else {
		u := &unit{src: j.Source, jobs: []rules.Job{j}, unitSettings: e.settingsFor(j.Rule)}
		want, filtered, err := e.sourceDigest(ctx, u, seen)
		if err != nil {
			return problem(ProblemError, j.Source.String(), err.Error())
		}
		if filtered != nil {
			res.Filtered = filtered.Error() // nothing should be there
			return res
		}
		res.Want = want
	}
	if j.Destination.Tag == "" {
		res.Job.Destination.Digest = res.Want
	}

	dst, err := e.store(ctx, j.Destination.Registry, j.Destination.Repository, false)
	if err != nil {
		return problem(ProblemError, j.Destination.Repo(), err.Error())
	}
	ref := manifestRef(dst, j.Destination.Tag, res.Want)
	d, err := dst.HeadManifest(ctx, ref)
	switch {
	case oci.IsNotFound(err):
		return problem(ProblemMissing, j.Destination.Repo()+refSep(ref)+ref, missingDetail(err))
	case err != nil:
		return problem(ProblemError, j.Destination.Repo()+refSep(ref)+ref, e.explain(dst, err).Error())
	}
	res.Got = d.Digest
	if d.Digest != res.Want {
		return problem(ProblemDigest, j.Destination.Repo()+refSep(ref)+ref, fmt.Sprintf("holds %s, want %s", d.Digest, res.Want))
	}
	for _, p := range e.verifyTree(ctx, dst, res.Want, opt.Deep, seen) {
		if sparse && p.Kind == ProblemMissingChild {
			continue // offline, keep-index: the ledger does not say which children were left out
		}
		res.Problems = append(res.Problems, p)
	}
	return res
}

// sourceDigest returns the digest a unit's destinations must hold (or why
// the platform filter removes everything): what a sync decides, by the
// same steps.
func (e *Engine) sourceDigest(ctx context.Context, u *unit, skip map[string]bool) (want string, filtered, err error) {
	src, err := e.resolveSource(ctx, u.src)
	if err != nil {
		return "", nil, err
	}
	src.skip = skip // the children a keep-index filter leaves out are not looked for
	want, filtered, err = e.wantDigest(ctx, u, src)
	if err != nil || filtered != nil {
		return "", filtered, err
	}
	return want, nil, nil
}

func refSep(ref string) string {
	if strings.HasPrefix(ref, "@") { // a layout's image named by digest
		return ""
	}
	if len(ref) > 7 && ref[:7] == "sha256:" {
		return "@"
	}
	return ":"
}

// verifyTree checks that every child manifest and blob under digest exists
// at dst (and, deep, that every blob hashes right), walking dst's tree
// (walkTree); skip holds the children not looked for (a keep-index filter
// left them out).
func (e *Engine) verifyTree(ctx context.Context, dst Store, digest string, deep bool, skip map[string]bool) []Problem {
	raw, desc, err := dst.GetManifest(ctx, digest)
	if oci.IsNotFound(err) {
		return []Problem{{Kind: ProblemMissingChild, Ref: dst.String() + "@" + digest}}
	}
	if err != nil {
		return []Problem{{Kind: ProblemError, Ref: dst.String() + "@" + digest, Detail: err.Error()}}
	}
	var problems []Problem
	checked := map[string]bool{} // blobs
	tree := &source{repo: dst, skip: skip}
	walkTree(ctx, tree, manifest{digest: digest, mediaType: desc.MediaType, raw: raw}, walker{
		visit: func(ctx context.Context, m manifest, blobs []oci.Blob) {
			for _, b := range blobs {
				if checked[b.Digest] {
					continue
				}
				checked[b.Digest] = true
				ref := dst.String() + "@" + b.Digest
				if deep {
					// Re-hashing only reads: the first interrupt stops it at once.
					hctx, cancel := withStop(ctx, e.opt.Stop)
					p := verifyBlobBytes(hctx, dst, b)
					cancel()
					if p != nil {
						problems = append(problems, *p)
					}
					continue
				}
				ok, err := dst.HeadBlob(ctx, b.Digest)
				switch {
				case err != nil:
					problems = append(problems, Problem{Kind: ProblemError, Ref: ref, Detail: err.Error()})
				case !ok:
					problems = append(problems, Problem{Kind: ProblemMissingBlob, Ref: ref})
				}
			}
		},
		fail: func(d string, err error) {
			ref := dst.String() + "@" + d
			if oci.IsNotFound(err) {
				problems = append(problems, Problem{Kind: ProblemMissingChild, Ref: ref})
				return
			}
			problems = append(problems, Problem{Kind: ProblemError, Ref: ref, Detail: err.Error()})
		},
	})
	return problems
}

// verifyBlobBytes downloads a blob and re-hashes it; a download that breaks
// is tried again (three times in all) before it counts as an error.
func verifyBlobBytes(ctx context.Context, dst Store, b oci.Blob) *Problem {
	var p *Problem
	for range 3 {
		var transient bool
		if p, transient = hashBlob(ctx, dst, b); p == nil || !transient || ctx.Err() != nil {
			return p
		}
	}
	return p
}

func hashBlob(ctx context.Context, dst Store, b oci.Blob) (*Problem, bool) {
	ref := dst.String() + "@" + b.Digest
	rc, _, err := dst.GetBlob(ctx, b.Digest)
	if oci.IsNotFound(err) {
		return &Problem{Kind: ProblemMissingBlob, Ref: ref}, false
	}
	if err != nil {
		return &Problem{Kind: ProblemError, Ref: ref, Detail: err.Error()}, !client.IsPermanent(err)
	}
	defer rc.Close()
	h := sha256.New()
	// Never more than the descriptor says (and one byte to tell a longer
	// blob), and not past an interrupt: a blob may be endless.
	var body io.Reader = rc
	if b.Size > 0 {
		body = io.LimitReader(rc, b.Size+1)
	}
	n, err := io.Copy(h, ctxBound{ctx, body})
	if err != nil && ctx.Err() != nil {
		return &Problem{Kind: ProblemError, Ref: ref, Detail: "not checked: " + ErrInterrupted.Error()}, false
	}
	if err != nil {
		return &Problem{Kind: ProblemError, Ref: ref, Detail: err.Error()}, client.IsTransientNetwork(err)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if got != b.Digest || (b.Size > 0 && n != b.Size) {
		return &Problem{Kind: ProblemCorruptBlob, Ref: ref, Detail: fmt.Sprintf("%d bytes hashing to %s%s", n, got, readFrom(rc))}, false
	}
	return nil, false
}

// ctxBound stops a read when the context is done.
type ctxBound struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxBound) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// withStop returns ctx, also cancelled when stop closes.
func withStop(ctx context.Context, stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if stop != nil {
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}
