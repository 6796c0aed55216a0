package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// TokenAuth makes the server demand bearer tokens (the flow of Docker Hub,
// Harbor, Quay and GitLab). The harness runs the token server itself at
// /token on the proxy's host:port — the realm must be on the registry's own
// address, as go-containerregistry refuses private realm hosts elsewhere.
type TokenAuth struct {
	Users         map[string]string // user → password
	AnonymousPull bool              // anonymous token requests get pull access
	// IdentityTokens maps OAuth2 refresh tokens (docker's "identitytoken")
	// to users: POST /token with grant_type=refresh_token.
	IdentityTokens map[string]string
	TTL            time.Duration // token lifetime; default 5 minutes
}

// TokenRequest is one request the token server answered.
type TokenRequest struct {
	User   string   // "" when anonymous
	Scopes []string // the scope parameters, sorted
	Status int
	Token  string // the token issued ("" on failure)
}

// TokenLog records the token server's requests.
type TokenLog struct {
	mu   sync.Mutex
	reqs []TokenRequest
}

// All returns every request so far.
func (l *TokenLog) All() []TokenRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]TokenRequest(nil), l.reqs...)
}

// Reset forgets the requests so far.
func (l *TokenLog) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = nil
}

func (l *TokenLog) add(r TokenRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r)
}

const (
	tokenService = "registrytest"
	tokenIssuer  = "registrytest-issuer"
)

// tokenServer signs ES256 JWTs with a self-signed certificate the registry
// trusts (rootcertbundle), carried in the x5c header.
type tokenServer struct {
	opt  TokenAuth
	key  *ecdsa.PrivateKey
	cert []byte // DER
	log  *TokenLog
}

func newTokenServer(opt TokenAuth, dir string, log *TokenLog) (*tokenServer, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "registrytest token signer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(cryptorand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	bundle := filepath.Join(dir, "token-root.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, "", err
	}
	if opt.TTL == 0 {
		opt.TTL = 5 * time.Minute
	}
	return &tokenServer{opt: opt, key: key, cert: der, log: log}, bundle, nil
}

type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// mint signs a token granting acc.
func (s *tokenServer) mint(subject string, acc []access) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	header, _ := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(s.cert)}})
	now := time.Now()
	var jti [8]byte
	_, _ = cryptorand.Read(jti[:])
	if acc == nil {
		acc = []access{}
	}
	claims, _ := json.Marshal(map[string]any{
		"iss": tokenIssuer, "sub": subject, "aud": tokenService,
		"exp": now.Add(s.opt.TTL).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": fmt.Sprintf("%x", jti), "access": acc,
	})
	signing := b64(header) + "." + b64(claims)
	sum := sha256.Sum256([]byte(signing))
	r, sg, err := ecdsa.Sign(cryptorand.Reader, s.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sg.FillBytes(sig[32:])
	return signing + "." + b64(sig), nil
}

var scopeRe = regexp.MustCompile(`^repository:([^:]+):([a-z,*]+)$`)

// ServeHTTP is the token endpoint: GET /token?service=…&scope=….
func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	scopes := r.URL.Query()["scope"]
	sort.Strings(scopes)
	rec := TokenRequest{Scopes: scopes}
	user, pass, hasAuth := r.BasicAuth()
	identity := false
	if r.Method == http.MethodPost { // OAuth2 password or refresh-token grant
		_ = r.ParseForm()
		if u := r.PostForm.Get("username"); u != "" {
			user, pass, hasAuth = u, r.PostForm.Get("password"), true
		}
		if r.PostForm.Get("grant_type") == "refresh_token" {
			u, ok := s.opt.IdentityTokens[r.PostForm.Get("refresh_token")]
			if !ok {
				rec.Status = http.StatusUnauthorized
				s.log.add(rec)
				http.Error(w, `{"details":"invalid refresh token"}`, http.StatusUnauthorized)
				return
			}
			user, hasAuth, identity = u, true, true
		}
		scopes = strings.Fields(r.PostForm.Get("scope"))
		sort.Strings(scopes)
		rec.Scopes = scopes
	}
	fail := func(code int, msg string) {
		rec.Status = code
		s.log.add(rec)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"details":%q}`, msg)
	}
	if hasAuth && !identity {
		if want, ok := s.opt.Users[user]; !ok || want != pass {
			fail(http.StatusUnauthorized, "incorrect username or password")
			return
		}
	}
	if hasAuth {
		rec.User = user
	}
	var acc []access
	for _, sc := range scopes {
		for _, one := range strings.Fields(sc) {
			m := scopeRe.FindStringSubmatch(one)
			if m == nil {
				continue
			}
			actions := strings.Split(m[2], ",")
			if !hasAuth {
				if !s.opt.AnonymousPull {
					continue
				}
				actions = []string{"pull"}
			}
			acc = append(acc, access{Type: "repository", Name: m[1], Actions: actions})
		}
	}
	tok, err := s.mint(rec.User, acc)
	if err != nil {
		fail(http.StatusInternalServerError, err.Error())
		return
	}
	rec.Status, rec.Token = http.StatusOK, tok
	s.log.add(rec)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": int(s.opt.TTL.Seconds()), "issued_at": time.Now().UTC().Format(time.RFC3339)})
}

var repoPathRe = regexp.MustCompile(`^/v2/(.+?)/(manifests|blobs|tags)/`)

// seedToken mints a token with every action on the repository a seeding
// request (to Direct) addresses.
func (s *tokenServer) seedToken(path string) string {
	var acc []access
	if m := repoPathRe.FindStringSubmatch(path); m != nil {
		acc = []access{{Type: "repository", Name: m[1], Actions: []string{"pull", "push", "delete"}}}
	}
	tok, _ := s.mint("registrytest-seeder", acc)
	return tok
}
