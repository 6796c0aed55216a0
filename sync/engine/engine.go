// Package engine is imagesync's copy engine: it expands rules into jobs,
// decides per job with manifest HEADs, and copies manifests byte for byte
// with their blobs streamed source → destination, deduplicated and mounted
// across the run. plan, sync and verify are views of the same engine.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/registry/client"
	"github.com/imagesync/imagesync/sync/layout"
	"github.com/imagesync/imagesync/sync/ledger"
	"github.com/imagesync/imagesync/sync/rules"
)

// Action is what happened to a job.
type Action string

const (
	Copied   Action = "copied"
	Skipped  Action = "skipped"  // destination already had the digest
	Filtered Action = "filtered" // no platform matched the filter
	Failed   Action = "failed"

	WouldCopy   Action = "copy"   // plan: the destination lacks the reference
	WouldUpdate Action = "update" // plan: the destination tag holds another digest
)

// JobResult is the outcome of one source → destination job.
type JobResult struct {
	Job      rules.Job
	Action   Action
	Digest   string // digest now at the destination (or that would be)
	Bytes    int64  // blob bytes uploaded for this destination
	Attempts int
	// Err says what went wrong, not which job: that is Job, and whoever
	// prints the error (the report) prints the job with it.
	Err      error
	Duration time.Duration
	// NotStarted: the run was interrupted before this job started or
	// finished (Action is Failed, so that the failed-images file lists it
	// for the next run; Err is ErrInterrupted or ErrStopped).
	NotStarted bool
	// Late: the job failed after its result was reported (the archive it
	// went into could not be written at the end of the run).
	Late bool

	// SourceDigest is the source's digest (it differs from Digest when a
	// platform filter rewrote the index).
	SourceDigest string
	// Subject is set on the rows of referrers: the digest they refer to.
	Subject      string
	ArtifactType string
	// Immutable is set on a job skipped without any request: its source
	// tag is immutable (the rule's immutable patterns) and the ledger saw
	// it copied.
	Immutable bool
	// Wait is the time left before a Waiting job's source is old enough
	// (--min-age).
	Wait time.Duration
}

// Summary counts a run.
type Summary struct {
	Copied, Skipped, Filtered, Failed int
	NotStarted                        int   // interrupted before they started (not counted in Failed)
	WouldCopy, WouldUpdate            int   // plan
	Waiting                           int   // held back by --min-age
	Deleted, WouldDelete              int   // --prune (sync, plan)
	Bytes                             int64 // blob bytes uploaded
	BlobsUploaded, BlobsMounted       int64
	BytesMounted                      int64 // bytes of the blobs mounted (not uploaded)
	ReadsResumed                      int64 // source blob reads cut midway and resumed from the byte reached
	BytesReread                       int64 // source bytes read again to resume (a registry that ignored Range)
	Requests, Retries                 int64
	Duration                          time.Duration
	Interrupted                       bool // Ctrl-C (Options.Stop) or a cancelled context
}

// Result is a whole run.
type Result struct {
	Jobs    []JobResult
	Summary Summary
}

// Options configure an Engine.
type Options struct {
	Concurrency int // concurrent images and blob transfers (--proc)
	// MaxTransfers, when above Concurrency, makes the number of blob
	// transfers learned (see gate): from Concurrency up to MaxTransfers.
	MaxTransfers int
	Retries      int  // extra attempts for a failed job (--retries)
	Force        bool // push manifests even when the destination matches
	Filter       Filter
	// Ledger, when set, records every finished manifest and blob. Blobs it
	// knows skip their HEAD and feed cross-repository mounts; a destination
	// manifest it knows at the source's digest is still confirmed with one
	// HEAD, unless TrustLedger.
	Ledger  *ledger.Ledger
	Refresh bool // write the ledger but do not believe it
	// TrustLedger lets a job whose destination the ledger saw at the
	// source's digest skip without any request to the destination: a
	// destination changed behind imagesync's back stays unnoticed.
	TrustLedger bool
	// DryRun decides and measures without writing anything (plan): jobs end
	// as WouldCopy, WouldUpdate, Skipped, Filtered or Failed.
	DryRun bool
	Logger *slog.Logger
	// OnResult is called once per finished job, from worker goroutines.
	OnResult func(JobResult)
	// OnPlanned is called with the size of each blob about to be uploaded
	// (again if the upload restarts), OnBytes as its bytes go: progress.
	OnPlanned, OnBytes func(n int64)
	// OnProgress, when set, receives the run's progress (see Progress), from
	// worker goroutines. Sync resolves every image (manifests read,
	// destinations asked) before the first upload, display or not, so that
	// the bytes to upload are known early and only shrink.
	OnProgress func(Progress)
	// Stop, when closed (the first Ctrl-C), stops starting new images and
	// cancels the walks, listings and transfers in flight (their upload
	// sessions are deleted; tags are written last, so nothing is left
	// half-pushed under a tag). The jobs not started are reported as
	// failed: interrupted (NotStarted); so are those in flight, with
	// ErrStopped.
	Stop <-chan struct{}
	// SetAside is --skip-invalid-rules for Expand and ExpandOffline: rules
	// only a listing shows to be invalid, and destination conflicts, are
	// set aside into it instead of failing the expansion; nil is strict.
	SetAside *rules.SetAside
}

// ErrInterrupted is the error of jobs that were not started because the run
// was interrupted.
var ErrInterrupted = errors.New("interrupted before it started")

// ErrStopped is the error of jobs in flight when the run was interrupted:
// their transfers were cancelled before the destination tag was written.
var ErrStopped = errors.New("interrupted before it finished")

// stoppable returns ctx cancelled (cause ErrStopped) when Options.Stop
// closes; the caller calls the cancel function when done.
func (e *Engine) stoppable(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if e.opt.Stop != nil {
		go func() {
			select {
			case <-e.opt.Stop:
				cancel(ErrStopped)
			case <-ctx.Done():
			}
		}()
	}
	return ctx, func() { cancel(nil) }
}

// stopped turns a job cut short by Options.Stop into one not done: its
// error is ErrStopped and it counts with the jobs not started (nothing was
// tagged; the failed-images file lists it for the next run).
func (e *Engine) stopped(r JobResult) JobResult {
	if r.Action == Failed && closed(e.opt.Stop) && (errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, ErrStopped)) {
		r.Err, r.NotStarted = ErrStopped, true
	}
	return r
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Engine runs jobs against one registry client.
type Engine struct {
	*transfer // blobs: checks, mounts, uploads (transfer.go)

	c      *client.Client
	opt    Options
	belief belief // which ledger facts the run acts on
	log    *slog.Logger

	// The client's counters when the engine was made: a client serves many
	// runs in watch mode (an engine each), a run's summary counts its own.
	requests0, retries0 int64
	refAPI              referrersAPI

	layouts *layout.Set // the image layouts the rules name
	prune   pruneState  // what Expand learnt for --prune
	// expanded are the rules of the last Expand when a wildcard rule was
	// replaced by one rule per repository (nil otherwise).
	expanded []rules.Rule
}

// New returns an Engine.
func New(c *client.Client, opt Options) *Engine {
	if opt.Concurrency < 1 {
		opt.Concurrency = 1
	}
	if opt.Retries < 0 {
		opt.Retries = 0
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	believe := newBelief(opt)
	layouts := layout.NewSet()
	layouts.SetNormalize(rules.CanonicalLayoutName) // "nginx:1" in index.json is docker.io/library/nginx:1
	e := &Engine{transfer: newTransfer(nil, opt.Concurrency, log), c: c, layouts: layouts, opt: opt, belief: believe, log: log}
	e.transfer.opt = &e.opt
	e.blobs = newBlobTracker(e.knowledge)
	if c != nil {
		e.requests0, e.retries0 = c.Stats.Requests.Load(), c.Stats.Retries.Load()
	}
	if opt.MaxTransfers > opt.Concurrency {
		var strain func() (int64, int64)
		if c != nil {
			strain = func() (int64, int64) { return c.Stats.Retries.Load(), c.Stats.Requests.Load() }
		}
		e.sem.adapt(opt.Concurrency, max(1, opt.Concurrency/4), opt.MaxTransfers, strain, log)
	}
	return e
}

// Observe sets the progress callbacks (see Options) before Sync.
func (e *Engine) Observe(onResult func(JobResult), onPlanned, onBytes func(int64)) {
	e.opt.OnResult, e.opt.OnPlanned, e.opt.OnBytes = onResult, onPlanned, onBytes
}

// ObserveProgress sets Options.OnProgress before Sync.
func (e *Engine) ObserveProgress(f func(Progress)) { e.opt.OnProgress = f }

// unit is one source reference with every destination that wants it: the
// source is read once for all of them.
type unit struct {
	src      rules.Ref
	jobs     []rules.Job
	attempts int
	healed   bool      // stale ledger entries were dropped once already
	decided  *decision // resolved ahead of the copy (first attempt only)
	unitSettings
}

func (e *Engine) groupUnits(jobs []rules.Job) []*unit {
	var units []*unit
	byKey := map[string]*unit{}
	for _, j := range jobs {
		us := e.settingsFor(j.Rule)
		k := j.Source.String() + "\x00" + us.key()
		u, ok := byKey[k]
		if !ok {
			u = &unit{src: j.Source, unitSettings: us}
			byKey[k] = u
			units = append(units, u)
		}
		u.jobs = append(u.jobs, j)
	}
	return units
}

// minWarm is how many connections a run opens ahead to each host however
// few its images: one image's children and blobs go at once.
const minWarm = 8

// unitsPerSlot is how many images are decided and copied at once per
// --proc slot: small images are bound by request latency, not bandwidth, so
// more of them are in flight than blob transfers (e.sem bounds those to
// --proc), and each host's --max-conns bounds the requests.
const unitsPerSlot = 4

// Sync copies every job. Results that were already decided (failed tag
// listings from Expand) are passed in pre and reported as they are.
func (e *Engine) Sync(ctx context.Context, jobs []rules.Job, pre []JobResult) *Result {
	start := time.Now()
	parent := ctx
	ctx, cancel := e.stoppable(ctx)
	defer cancel()
	res := &Result{}
	var mu sync.Mutex
	record := func(r JobResult) {
		mu.Lock()
		res.Jobs = append(res.Jobs, r)
		mu.Unlock()
		if e.opt.OnResult != nil {
			e.opt.OnResult(r)
		}
	}
	for _, r := range pre {
		record(r)
	}

	units := e.groupUnits(jobs)
	if e.c != nil {
		// Each image's decision sends a request to each host at once, and
		// even one image reads its children and blobs at once: open the
		// connections for them with the first one (see ExpectParallel).
		e.c.ExpectParallel(min(max(len(units), minWarm), e.opt.Concurrency*unitsPerSlot))
	}
	q := &unitQueue{e: e, ctx: ctx, record: record, units: make(chan *unit, len(units))}
	for _, u := range units {
		q.units <- u
	}
	q.pending.Add(len(units))
	go func() { q.pending.Wait(); close(q.units) }()
	if !e.opt.DryRun {
		// Every unit is resolved before the first upload, with or without
		// a display: the decisions and manifests are kept for the copy.
		emit := e.opt.OnProgress
		if emit == nil {
			emit = func(Progress) {}
		}
		e.work = newWorkTracker(emit)
		e.resolve(ctx, units)
	}
	var workers sync.WaitGroup
	for range min(e.opt.Concurrency*unitsPerSlot, max(len(units), 1)) {
		workers.Go(func() {
			for u := range q.units {
				q.run(u)
			}
		})
	}
	workers.Wait()
	e.finishLayouts(res)
	for _, r := range e.pruneAll(ctx) {
		record(r)
	}

	e.summarize(parent, res, start)
	return res
}

// unitQueue is one Sync's queue of units: workers take a unit, run it, and
// record its results or put it back for a retry.
type unitQueue struct {
	e       *Engine
	ctx     context.Context
	record  func(JobResult)
	units   chan *unit // capacity len(units): one slot per unit
	pending sync.WaitGroup
}

// run runs one unit taken from the queue (or reports it not started).
func (q *unitQueue) run(u *unit) {
	e, ctx := q.e, q.ctx
	if ctx.Err() != nil || closed(e.opt.Stop) {
		err := ErrInterrupted
		if !closed(e.opt.Stop) {
			err = fmt.Errorf("not started: %w", context.Cause(ctx))
		}
		for _, j := range u.jobs {
			q.record(JobResult{Job: j, Action: Failed, Err: err, Attempts: u.attempts, NotStarted: true})
		}
		q.finish(u)
		return
	}
	u.attempts++
	wait := JobBackoff(u.attempts)
	if e.work != nil {
		dsts := make([]string, len(u.jobs))
		for i, j := range u.jobs {
			dsts[i] = j.Destination.String()
		}
		e.work.emit(Progress{Kind: ProgressStarted, Image: u.src.String(), Destinations: dsts})
	}
	var retry []rules.Job
	for _, r := range e.runUnit(withUnit(ctx, u), u) {
		r = e.stopped(r)
		if r.Action == Failed && !client.IsPermanent(r.Err) && u.attempts <= e.opt.Retries && ctx.Err() == nil && !closed(e.opt.Stop) {
			e.log.Warn("will retry", "source", r.Job.Source.String(), "destination", r.Job.Destination.String(), "attempt", u.attempts, "after", wait.Round(time.Millisecond).String(), "error", r.Err)
			retry = append(retry, r.Job)
			continue
		}
		q.record(r)
	}
	if len(retry) == 0 {
		q.finish(u)
		return
	}
	u.jobs = retry
	// Back on the queue after an exponential, jittered wait; an interrupted
	// run puts it back at once to report it.
	go func() {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-e.opt.Stop:
		}
		q.units <- u
	}()
}

// finish is called once a unit has every result.
func (q *unitQueue) finish(u *unit) {
	u.decided = nil
	q.e.work.release(u)
	if q.e.work != nil {
		q.e.work.emit(Progress{Kind: ProgressFinished, Image: u.src.String()})
	}
	q.pending.Done()
}

// summarize counts the results of a run into its Summary.
func (e *Engine) summarize(ctx context.Context, res *Result, start time.Time) {
	s := &res.Summary
	for _, r := range res.Jobs {
		switch r.Action {
		case Copied:
			s.Copied++
		case Skipped:
			s.Skipped++
		case Filtered:
			s.Filtered++
		case Failed:
			if r.NotStarted {
				s.NotStarted++
			} else {
				s.Failed++
			}
		case WouldCopy:
			s.WouldCopy++
		case WouldUpdate:
			s.WouldUpdate++
		case Waiting:
			s.Waiting++
		case Deleted:
			s.Deleted++
		case WouldDelete:
			s.WouldDelete++
		}
		if e.opt.DryRun {
			s.Bytes += r.Bytes
		}
	}
	if !e.opt.DryRun {
		s.Bytes = e.bytes.Load()
	}
	s.Interrupted = ctx.Err() != nil || closed(e.opt.Stop)
	s.BlobsUploaded = e.uploaded.Load()
	s.BlobsMounted = e.mounted.Load()
	s.BytesMounted = e.mountedBytes.Load()
	s.ReadsResumed, s.BytesReread = e.readsResumed.Load(), e.bytesReread.Load()
	s.Requests = e.c.Stats.Requests.Load() - e.requests0
	s.Retries = e.c.Stats.Retries.Load() - e.retries0
	s.Duration = time.Since(start)
}

// runUnit runs one unit and turns a panic into failed jobs.
func (e *Engine) runUnit(ctx context.Context, u *unit) (out []JobResult) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("internal error", "source", u.src.String(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			out = out[:0]
			for _, j := range u.jobs {
				out = append(out, JobResult{Job: j, Action: Failed, Attempts: u.attempts, Duration: time.Since(start),
					Err: oci.Permanent(fmt.Errorf("internal error (please report it): %v", p))})
			}
		}
	}()
	out = e.syncUnit(ctx, u)
	if stale := e.staleDestinations(out); len(stale) > 0 && !u.healed {
		// The destination lacks blobs or children that the ledger (or this
		// run) believed present: forget them and redo those jobs at once.
		u.healed = true
		var redo []rules.Job
		keep := out[:0]
		for _, r := range out {
			if stale[r.Job.Destination.Repo()] {
				redo = append(redo, r.Job)
				continue
			}
			keep = append(keep, r)
		}
		for repo := range stale {
			e.log.Warn("destination contradicts the ledger: forgetting it and redoing the copy", "repository", repo)
		}
		out = append(keep, e.syncUnit(ctx, &unit{src: u.src, jobs: redo, attempts: u.attempts, healed: true, unitSettings: u.unitSettings})...)
	}
	if u.referrers != nil {
		out = e.withReferrers(ctx, u, out)
	}
	for i := range out {
		out[i].Attempts = u.attempts
		out[i].Duration = time.Since(start)
	}
	return out
}

// staleDestinations returns the destination repositories whose manifest
// PUT was refused for a missing blob or child, after forgetting them.
func (e *Engine) staleDestinations(out []JobResult) map[string]bool {
	stale := map[string]bool{}
	for _, r := range out {
		var re *client.Error
		if r.Action == Failed && errors.As(r.Err, &re) && (re.HasCode(transport.ManifestBlobUnknownErrorCode, transport.BlobUnknownErrorCode) || (re.Method == http.MethodPut && re.HasCode(transport.ManifestUnknownErrorCode))) {
			stale[r.Job.Destination.Repo()] = true
		}
	}
	for repo := range stale {
		reg, name, _ := strings.Cut(repo, "/")
		if dst, err := e.c.Repo(context.Background(), reg, name, true); err == nil {
			e.blobs.forget(dst)
		}
	}
	return stale
}
