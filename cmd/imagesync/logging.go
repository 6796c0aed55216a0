package main

import (
	"io"
	"log/slog"
	"os"
)

func openLog(rc *runContext) (io.Writer, func(), error) {
	if rc.global.Log == "" {
		return rc.stderr, func() {}, nil
	}
	f, err := os.OpenFile(rc.global.Log, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, usageError("--log: %v", err)
	}
	return f, func() { f.Close() }, nil
}

func newLogger(w io.Writer, g *Globals) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case g.Debug:
		level = slog.LevelDebug
	case g.Quiet:
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
