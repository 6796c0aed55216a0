package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/imagesync/imagesync/credentials"
)

// tlsTransport returns the retrying transport for one TLS setting, built
// once per run.
func (c *Client) tlsTransport(skipVerify bool, files credentials.TLS) (http.RoundTripper, error) {
	key := tlsID(files, skipVerify)
	c.tlsMu.Lock()
	defer c.tlsMu.Unlock()
	if rt, ok := c.transports[key]; ok {
		return rt, nil
	}
	rt, err := c.newTransport(skipVerify, files)
	if err != nil {
		return nil, err
	}
	c.transports[key] = rt
	return rt, nil
}

// tlsID names one TLS identity: the files, and whether verification is off.
func tlsID(files credentials.TLS, insecure bool) string {
	if insecure {
		return files.ID() + "\x00insecure"
	}
	return files.ID()
}

// HostTLS is implemented by keychains that know the TLS settings of a bare
// host (certs.d, --ca-file, an auth-file entry for the host): the settings
// used for a request to a host other than the registry's own (its token
// realm, a redirect to storage).
type HostTLS interface {
	HostTLS(host string) (files credentials.TLS, insecure bool)
}

// hostRouter picks the TLS settings of each request from the request's own
// host: the registry's settings (its CA, client certificate, insecure) for
// the registry itself, and that host's own settings for any other host (a
// token realm, a storage redirect). "insecure: true" for one registry never
// covers another host.
type hostRouter struct {
	c    *Client
	host string // the registry's host[:port], as in request URLs
	own  http.RoundTripper
}

func (h *hostRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	if sameHost(r.URL, h.host) {
		return h.own.RoundTrip(r)
	}
	rt, err := h.c.otherHost(r.URL.Host)
	if err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("TLS settings for %s: %w", r.URL.Host, err)
	}
	return rt.RoundTrip(r)
}

// otherHost returns the transport for a host reached without being the
// registry in use (a token realm, a storage redirect), by that host's own
// TLS settings, looked up once per run.
func (c *Client) otherHost(host string) (http.RoundTripper, error) {
	c.tlsMu.Lock()
	rt, ok := c.others[host]
	c.tlsMu.Unlock()
	if ok {
		return rt, nil
	}
	var files credentials.TLS
	insecure := false
	if ht, ok := c.kc.(HostTLS); ok {
		files, insecure = ht.HostTLS(host)
	}
	rt, err := c.tlsTransport(insecure, files)
	if err != nil {
		return nil, err
	}
	c.tlsMu.Lock()
	c.others[host] = rt
	c.tlsMu.Unlock()
	return rt, nil
}

// sameHost compares a URL's host with a registry host, default ports
// included (registry.example and registry.example:443 over https).
func sameHost(u *url.URL, host string) bool {
	if strings.EqualFold(u.Host, host) {
		return true
	}
	port := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	withPort := func(h string) string {
		if _, _, err := net.SplitHostPort(h); err == nil {
			return strings.ToLower(h)
		}
		return strings.ToLower(net.JoinHostPort(strings.Trim(h, "[]"), port))
	}
	return withPort(u.Host) == withPort(host)
}

// newTransport builds a retrying transport. Extra CA files are trusted on
// top of the system's roots; a client certificate is presented when given.
// skipVerify is set only for registries marked insecure.
func (c *Client) newTransport(skipVerify bool, files credentials.TLS) (http.RoundTripper, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
	if len(files.CAFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range files.CAFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("CA file: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s: no PEM certificate in it", f)
			}
		}
		tlsConfig.RootCAs = pool
	}
	if files.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", files.CertFile, err)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           newWarmDialer(idleDialer(c.timeout), c.warmConns).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: c.timeout,
		TLSClientConfig:       tlsConfig,
		// net/http's 4 KiB buffers, on purpose. A blob does not stream
		// through them: idleConn.ReadFrom writes a request body in 128 KiB
		// pieces straight to the socket, reading the source's body with
		// them, and a bufio.Reader hands a read that large straight to its
		// connection. 64 KiB buffers (kept until 2026-12-08) measured the
		// same on W1 and W2 since ReadFrom, but every connection carried
		// 128 KiB of heap: a no-op's 66 connections made 8 MiB, 4 garbage
		// collections instead of 2, and 1.05× regsync's time instead of
		// 1.01×.
		WriteBufferSize: 4 << 10,
		ReadBufferSize:  4 << 10,
	}
	return &userAgent{ua: c.userAgent, inner: &retryTransport{inner: base, policy: c.policy, stats: &c.Stats, log: c.log, hosts: c.limits, observer: c.observer}}, nil
}

type userAgent struct {
	ua    string
	inner http.RoundTripper
}

func (u *userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("User-Agent") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("User-Agent", u.ua)
	}
	return u.inner.RoundTrip(r)
}

// tlsHint says what to do about a certificate the client does not trust.
func tlsHint(err error, host string) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &unknown) || strings.Contains(err.Error(), "certificate signed by unknown authority"):
		return fmt.Sprintf(" (the registry's TLS certificate is signed by an unknown authority: put its CA in /etc/docker/certs.d/%s/ca.crt or ~/.docker/certs.d/%s/ca.crt, give --ca-file, or mark the auth entry insecure: true)", host, host)
	case errors.As(err, &hostErr):
		return " (the registry's TLS certificate does not name this host)"
	case errors.As(err, &invalid):
		return " (the registry's TLS certificate is not valid)"
	}
	return ""
}
