// Package notify posts one CloudEvents 1.0 event (structured JSON mode) per
// sync run to webhook URLs: the run's result, summary, failed images and
// duration. Delivery happens in the background, retried with backoff, so it
// never holds the next run; every body goes through the output redactor, so
// no secret the run learned is ever sent.
package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/imagesync/imagesync/credentials"
)

// EventType is the CloudEvents type of a finished run.
const EventType = "io.github.imagesync.run.finished"

// ContentType is the structured-mode media type.
const ContentType = "application/cloudevents+json"

// MaxFailed bounds the failed images listed in one event; the others are
// counted in FailedOmitted.
const MaxFailed = 100

// maxInFlight bounds the events being delivered at once: past it (a
// receiver down for long under a short --every) new events are dropped with
// a warning rather than piling up.
const maxInFlight = 32

// Event is a CloudEvents 1.0 event in structured JSON mode.
type Event struct {
	SpecVersion     string  `json:"specversion"`
	Type            string  `json:"type"`
	Source          string  `json:"source"`
	ID              string  `json:"id"`
	Time            string  `json:"time"`
	Subject         string  `json:"subject,omitempty"`
	DataContentType string  `json:"datacontenttype"`
	Data            RunData `json:"data"`
}

// RunData is what an event says about a run.
type RunData struct {
	Run             int       `json:"run"`    // 1, 2, … in watch mode
	Result          string    `json:"result"` // success, partial, failed, interrupted
	Started         time.Time `json:"started"`
	Finished        time.Time `json:"finished"`
	DurationSeconds float64   `json:"durationSeconds"`
	Summary         Summary   `json:"summary"`
	Failed          []Failure `json:"failed"`
	FailedOmitted   int       `json:"failedOmitted,omitempty"`
	// Error is why the run could not start (its rules did not expand).
	Error string `json:"error,omitempty"`
}

// Summary counts a run (as sync's summary line and -o json do).
type Summary struct {
	Copied        int   `json:"copied"`
	Skipped       int   `json:"skipped"`
	Filtered      int   `json:"filtered"`
	Failed        int   `json:"failed"`
	NotStarted    int   `json:"notStarted"`
	Bytes         int64 `json:"bytes"`
	BlobsUploaded int64 `json:"blobsUploaded"`
	BlobsMounted  int64 `json:"blobsMounted"`
	Requests      int64 `json:"requests"`
	Retries       int64 `json:"retries"`
}

// Failure is one failed image.
type Failure struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Error       string `json:"error"`
}

// Options configure a Notifier.
type Options struct {
	// Secrets are scrubbed from every body (and from the log lines).
	Secrets *credentials.SecretSet
	Logger  *slog.Logger
	// Attempts per event and URL (default 5), the first backoff (default
	// 1 s, doubled each time, jittered, at most 30 s) and the timeout of
	// one POST (default 10 s).
	Attempts int
	Backoff  time.Duration
	Timeout  time.Duration
	// Client posts the events (default: a client of its own with Timeout).
	Client *http.Client
}

// Notifier delivers events to its URLs.
type Notifier struct {
	urls   []*url.URL
	opt    Options
	source string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	busy   int
}

// ParseURL checks one --notify URL: http or https with a host. Its user
// information and query (tokens) are secrets: they are added to secrets.
func ParseURL(raw string, secrets *credentials.SecretSet) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--notify %s: want an http:// or https:// URL with a host", redactURL(raw))
	}
	if secrets != nil {
		if p, ok := u.User.Password(); ok {
			secrets.Add(p)
		}
		for _, vs := range u.Query() {
			secrets.Add(vs...)
		}
	}
	return u, nil
}

// redactURL is a URL as it may be printed: no user information, no query.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an invalid URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// New returns a Notifier posting to urls.
func New(urls []*url.URL, opt Options) *Notifier {
	if opt.Attempts < 1 {
		opt.Attempts = 5
	}
	if opt.Backoff <= 0 {
		opt.Backoff = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: opt.Timeout}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Secrets == nil {
		opt.Secrets = &credentials.SecretSet{}
	}
	host, _ := os.Hostname()
	n := &Notifier{urls: urls, opt: opt, source: "urn:imagesync:" + url.PathEscape(host)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

// NewEvent wraps a run's data in an event with a fresh id.
func (n *Notifier) NewEvent(d RunData) Event {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return Event{
		SpecVersion: "1.0", Type: EventType, Source: n.source, ID: hex.EncodeToString(id),
		Time: d.Finished.UTC().Format(time.RFC3339Nano), Subject: fmt.Sprintf("run %d", d.Run),
		DataContentType: "application/json", Data: d,
	}
}

// Send delivers ev to every URL in the background and returns at once.
func (n *Notifier) Send(ev Event) {
	body, err := n.encode(ev)
	if err != nil {
		n.opt.Logger.Error("notification not sent", "error", err)
		return
	}
	for _, u := range n.urls {
		n.mu.Lock()
		if n.busy >= maxInFlight {
			n.mu.Unlock()
			n.opt.Logger.Warn("notification dropped: too many still being delivered", "url", redactURL(u.String()), "run", ev.Data.Run)
			continue
		}
		n.busy++
		n.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer func() {
				n.mu.Lock()
				n.busy--
				n.mu.Unlock()
				n.wg.Done()
			}()
			n.deliver(u, ev.Data.Run, body)
		}()
	}
}

// encode marshals ev through the redactor: nothing the run learned as a
// secret (passwords, tokens, --notify URLs' own) leaves in a body.
func (n *Notifier) encode(ev Event) ([]byte, error) {
	for i := range ev.Data.Failed {
		ev.Data.Failed[i].Error = n.opt.Secrets.Redact(ev.Data.Failed[i].Error)
	}
	ev.Data.Error = n.opt.Secrets.Redact(ev.Data.Error)
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := credentials.NewRedactor(&buf, n.opt.Secrets).Write(raw); err != nil {
		return nil, err
	}
	if !json.Valid(buf.Bytes()) {
		return nil, errors.New("the redacted event is not valid JSON")
	}
	return buf.Bytes(), nil
}

// deliver posts body to u until it is accepted (2xx), refused for good
// (4xx other than 408 and 429), the attempts are used up or Close cancels.
func (n *Notifier) deliver(u *url.URL, run int, body []byte) {
	shown := redactURL(u.String())
	wait := n.opt.Backoff
	var last error
	for attempt := 1; attempt <= n.opt.Attempts; attempt++ {
		if attempt > 1 {
			d := wait/2 + time.Duration(mrand.Int64N(int64(wait/2)+1))
			t := time.NewTimer(d)
			select {
			case <-n.ctx.Done():
				t.Stop()
				n.opt.Logger.Warn("notification not delivered: stopping", "url", shown, "run", run, "error", last)
				return
			case <-t.C:
			}
			wait = min(2*wait, 30*time.Second)
		}
		retry, err := n.post(u, body)
		if err == nil {
			n.opt.Logger.Debug("notification delivered", "url", shown, "run", run, "attempt", attempt)
			return
		}
		last = err
		if !retry {
			break
		}
	}
	n.opt.Logger.Warn("notification not delivered", "url", shown, "run", run, "error", last)
}

// post sends one attempt; retry says whether another may succeed.
func (n *Notifier) post(u *url.URL, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, errors.New("cannot make the request")
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", "imagesync")
	resp, err := n.opt.Client.Do(req)
	if err != nil {
		// The error names the URL: print it without user information or query.
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		return n.ctx.Err() == nil, fmt.Errorf("POST %s: %s", redactURL(u.String()), n.opt.Secrets.Redact(msg))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return true, fmt.Errorf("POST %s: %s", redactURL(u.String()), resp.Status)
	default:
		return false, fmt.Errorf("POST %s: %s", redactURL(u.String()), resp.Status)
	}
}

// Close waits up to wait for the deliveries in flight, then cancels them.
func (n *Notifier) Close(wait time.Duration) {
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	n.cancel()
	<-done
}

// Failures lists failed images as an event carries them, at most MaxFailed,
// and how many more there were.
func Failures(fs []Failure) ([]Failure, int) {
	if len(fs) <= MaxFailed {
		return fs, 0
	}
	return fs[:MaxFailed], len(fs) - MaxFailed
}
