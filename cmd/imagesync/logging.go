package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode"
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
	return slog.New(newPlainHandler(w, opts))
}

// plainHandler writes log records in the plain style of the other lines
// (per-image lines, the summary): "warning: will retry: source=… attempt=1",
// no time or level keys; "error: " and "debug: " likewise. The attributes
// are formatted as slog's text handler does (quoted where needed).
type plainHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	buf   *bytes.Buffer
	inner slog.Handler // a TextHandler writing the attributes alone into buf
}

func newPlainHandler(w io.Writer, opts *slog.HandlerOptions) *plainHandler {
	buf := &bytes.Buffer{}
	o := *opts
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
			return slog.Attr{}
		}
		return a
	}
	return &plainHandler{mu: &sync.Mutex{}, w: w, buf: buf, inner: slog.NewTextHandler(buf, &o)}
}

func (h *plainHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *plainHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	var line strings.Builder
	switch {
	case r.Level >= slog.LevelError:
		line.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		line.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		line.WriteString("debug: ")
	}
	if strings.ContainsFunc(r.Message, unicode.IsControl) {
		line.WriteString(strconv.Quote(r.Message)) // one line, whatever it holds
	} else {
		line.WriteString(r.Message)
	}
	if attrs := strings.TrimSpace(h.buf.String()); attrs != "" {
		line.WriteString(": " + attrs)
	}
	line.WriteByte('\n')
	_, err := io.WriteString(h.w, line.String())
	return err
}

func (h *plainHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &plainHandler{mu: h.mu, w: h.w, buf: h.buf, inner: h.inner.WithAttrs(as)}
}

func (h *plainHandler) WithGroup(name string) slog.Handler {
	return &plainHandler{mu: h.mu, w: h.w, buf: h.buf, inner: h.inner.WithGroup(name)}
}
