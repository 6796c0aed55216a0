package engine

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// transfer moves blobs, apart from deciding what to copy: the tracker (what
// each destination registry holds, uploads in flight, mount probes), blob
// checks (HEAD, the one-POST mount check), mounts, uploads with their
// restarts, one read fanned out to many registries, and the
// digest-verifying reader. It has its own limits (sem: blob transfers at
// once; concurrency: blobs of one image at once) and counters. The engine
// embeds it; the decision code calls copyBlobs, planBlobs and the tracker's
// manifest facts, nothing deeper.
type transfer struct {
	blobs       *blobTracker
	sem         *gate // bounds blob transfers across images (--proc, or learned)
	concurrency int   // blobs of one image copied at once
	log         *slog.Logger
	work        *workTracker // progress accounting; nil for a dry run

	opt *Options // the engine's: OnPlanned and OnBytes, set until Sync starts

	uploaded, mounted atomic.Int64 // blobs
	mountedBytes      atomic.Int64 // bytes mounted
	bytes             atomic.Int64 // bytes uploaded
	readsResumed      atomic.Int64 // source reads cut midway and resumed (resumingReader)
	noChunks          sync.Map     // host → true: it refused a chunked upload (uploadResumable)
	bytesReread       atomic.Int64 // bytes read again to resume (a source that ignored Range)
}

func newTransfer(blobs *blobTracker, concurrency int, log *slog.Logger) *transfer {
	return &transfer{blobs: blobs, sem: newGate(concurrency), concurrency: concurrency, log: log}
}
