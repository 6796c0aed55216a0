package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/imagesync/imagesync/sync/ledger"
)

// LedgerCmd is `imagesync ledger`: a human-readable view of the digest
// ledger, which is kept in an indexed database file.
type LedgerCmd struct {
	Export LedgerExportCmd `cmd:"" help:"Print everything the ledger knows as JSON lines, sorted (the format older versions kept it in: such a file given as --ledger is migrated back)."`
	Stats  LedgerStatsCmd  `cmd:"" help:"Count what the ledger holds: destination manifests, repositories, blob facts, registries, repair marks."`
}

// ledgerFile is the --ledger flag of the ledger subcommands.
type ledgerFile struct {
	Ledger string `type:"path" placeholder:"FILE" env:"IMAGESYNC_LEDGER" help:"Digest ledger file (default: imagesync/ledger.db in the user cache directory)."`
}

// open opens the ledger read-only: nothing is written, and a JSON-lines
// ledger is read as it is (the next sync migrates it).
func (f ledgerFile) open() (*ledger.Ledger, error) {
	path := f.Ledger
	if path == "" {
		var err error
		if path, err = ledger.DefaultPath(); err != nil {
			return nil, usageError("%v", err)
		}
	}
	l, err := ledger.OpenReadOnly(path)
	if err != nil {
		return nil, usageError("%v", err)
	}
	return l, nil
}

// LedgerExportCmd is `imagesync ledger export`.
type LedgerExportCmd struct {
	ledgerFile
}

// Run implements the command.
func (c *LedgerExportCmd) Run(rc *runContext) error {
	l, err := c.open()
	if err != nil {
		return err
	}
	defer l.Close()
	for _, w := range l.Warnings() {
		fmt.Fprintln(rc.stderr, "warning:", w)
	}
	return l.Export(rc.stdout)
}

// LedgerStatsCmd is `imagesync ledger stats`.
type LedgerStatsCmd struct {
	ledgerFile
	Output string `short:"o" enum:"table,json" default:"table" help:"Output: ${enum}."`
}

// Run implements the command.
func (c *LedgerStatsCmd) Run(rc *runContext) error {
	l, err := c.open()
	if err != nil {
		return err
	}
	defer l.Close()
	for _, w := range l.Warnings() {
		fmt.Fprintln(rc.stderr, "warning:", w)
	}
	s, err := l.Stats()
	if err != nil {
		return err
	}
	if c.Output == "json" {
		enc := json.NewEncoder(rc.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	tw := tabwriter.NewWriter(rc.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ledger\t%s\n", s.Path)
	fmt.Fprintf(tw, "format\t%s\n", s.Format)
	fmt.Fprintf(tw, "size\t%d bytes\n", s.FileBytes)
	if s.Created != "" {
		fmt.Fprintf(tw, "created\t%s\n", s.Created)
	}
	if s.Migrated != "" {
		fmt.Fprintf(tw, "migrated from\t%s\n", s.Migrated)
	}
	fmt.Fprintf(tw, "destination manifests\t%d\n", s.Manifests)
	fmt.Fprintf(tw, "repositories with blobs\t%d\n", s.Repositories)
	fmt.Fprintf(tw, "blob facts\t%d\n", s.BlobFacts)
	fmt.Fprintf(tw, "registries\t%d\n", s.Registries)
	fmt.Fprintf(tw, "marked for repair\t%d\n", s.Repairs)
	return tw.Flush()
}

// readerWait is how long a run's last batch of ledger facts waits for the
// other runs using the ledger (their batches, a long ledger export) before
// giving up.
const readerWait = 5 * time.Minute

// openLedger opens the run's ledger: read-only for plan; for writing
// otherwise, the last batch waiting (with a message, until interrupted)
// for the other runs using it.
func openLedger(rc *runContext, s *session, path string, readOnly bool) (*ledger.Ledger, error) {
	if readOnly {
		return ledger.OpenReadOnly(path)
	}
	// The wait happens at Close: the context lives until the session ends
	// (its closers run in reverse, after the ledger's Close).
	ctx, cancel := context.WithCancel(rc.ctx)
	s.closers = append(s.closers, cancel)
	go func() {
		select {
		case <-rc.env.interrupt:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ledger.Open(path, ledger.WaitForReaders(ctx, readerWait, func() {
		s.log.Warn("the ledger is in use by another imagesync (a sync, plan or ledger export): waiting to write this run's last facts", "ledger", path)
	}))
}
