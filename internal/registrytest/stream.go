package registrytest

import (
	"io"
	"net/http"
	"testing"
)

// PushBlobReader uploads size bytes read from body (POST + one streamed
// monolithic PUT) to Direct under digest, which the caller computed: for
// blobs too large to hold in memory.
func (r *Registry) PushBlobReader(t testing.TB, repo, digest string, size int64, body io.Reader) {
	t.Helper()
	u := r.uploadURL(t, repo, digest)
	req, err := http.NewRequest(http.MethodPut, u, io.LimitReader(body, size))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	if r.tokens != nil {
		req.Header.Set("Authorization", "Bearer "+r.tokens.seedToken(req.URL.Path))
	}
	put, err := r.client.Do(req)
	if err != nil {
		t.Fatalf("registrytest: PUT %s: %v", req.URL.Path, err)
	}
	defer put.Body.Close()
	pb, _ := io.ReadAll(io.LimitReader(put.Body, 64<<10))
	r.expect(t, put, pb, http.StatusCreated)
	if got := put.Header.Get("Docker-Content-Digest"); got != "" && got != digest {
		t.Fatalf("registrytest: pushed blob %s but registry says %s", digest, got)
	}
}
