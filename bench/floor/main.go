// Command floor is the protocol floor `make bench` measures every tool
// against: the fewest requests a registry-to-registry copy can make. It
// reads each source manifest once, streams each distinct blob once per
// destination registry (GET → POST → PUT, no HEAD; another repository that
// needs it gets a POST with mount= and from=, which checks and mounts at
// once), and pushes children before the index that lists them. No retries,
// no auth, plain HTTP: a yardstick for loopback registries, not a tool.
//
//	floor -plan plan.json -j 8
//
// plan.json: {"src":"127.0.0.1:5000","dst":"127.0.0.1:5001",
// "images":[{"repo":"src/a","dst":"dst/a","tag":"v1"}]}
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
)

type image struct{ Repo, Dst, Tag string }

type plan struct {
	Src, Dst string
	Images   []image
}

const accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

var (
	client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	mu     sync.Mutex
	copies = map[string]*blob{}  // digest + destination repository → its copy
	first  = map[string]string{} // digest → the destination repository that uploads it
)

type blob struct {
	done chan struct{}
	err  error
}

func do(method, u string, hdr http.Header, body io.Reader, size int64, want int) (*http.Response, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.ContentLength = size
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %d, want %d: %s", method, u, resp.StatusCode, want, b)
	}
	return resp, nil
}

// manifest GETs a manifest once: its bytes and media type.
func manifest(p plan, repo, ref string) ([]byte, string, error) {
	resp, err := do("GET", "http://"+p.Src+"/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {accept}}, nil, 0, 200)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.Header.Get("Content-Type"), err
}

// copyBlob makes dst hold the blob, once: a mount from the repository
// that uploads it, else GET → POST → PUT.
func copyBlob(p plan, repo, dst, digest string) (err error) {
	mu.Lock()
	b, seen := copies[digest+" "+dst]
	if seen {
		mu.Unlock()
		<-b.done
		return b.err
	}
	b = &blob{done: make(chan struct{})}
	copies[digest+" "+dst] = b
	from, uploaded := first[digest]
	if !uploaded {
		first[digest] = dst
	}
	origin := copies[digest+" "+from]
	mu.Unlock()
	defer func() { b.err = err; close(b.done) }()
	if uploaded {
		if <-origin.done; origin.err != nil {
			return origin.err
		}
		resp, err := do("POST", "http://"+p.Dst+"/v2/"+dst+"/blobs/uploads/?mount="+digest+"&from="+from, nil, nil, 0, 201)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	get, err := do("GET", "http://"+p.Src+"/v2/"+repo+"/blobs/"+digest, nil, nil, 0, 200)
	if err != nil {
		return err
	}
	defer get.Body.Close()
	post, err := do("POST", "http://"+p.Dst+"/v2/"+dst+"/blobs/uploads/", nil, nil, 0, 202)
	if err != nil {
		return err
	}
	post.Body.Close()
	loc, err := url.Parse(post.Header.Get("Location"))
	if err != nil {
		return err
	}
	loc = (&url.URL{Scheme: "http", Host: p.Dst}).ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	put, err := do("PUT", loc.String(), http.Header{"Content-Type": {"application/octet-stream"}}, get.Body, get.ContentLength, 201)
	if err != nil {
		return err
	}
	put.Body.Close()
	return nil
}

// copyManifest copies repo@ref (ref a tag or digest) to dst under ref,
// blobs and children first.
func copyManifest(p plan, repo, dst, ref string) error {
	raw, mt, err := manifest(p, repo, ref)
	if err != nil {
		return err
	}
	var m struct {
		Config    *struct{ Digest string }
		Layers    []struct{ Digest string }
		Manifests []struct{ Digest string }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%s/%s: %v", repo, ref, err)
	}
	for _, c := range m.Manifests {
		if err := copyManifest(p, repo, dst, c.Digest); err != nil {
			return err
		}
	}
	var need []string
	if m.Config != nil {
		need = append(need, m.Config.Digest)
	}
	for _, l := range m.Layers {
		need = append(need, l.Digest)
	}
	errs := make(chan error, len(need))
	for _, d := range need {
		go func() { errs <- copyBlob(p, repo, dst, d) }()
	}
	for range need {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	resp, err := do("PUT", "http://"+p.Dst+"/v2/"+dst+"/manifests/"+ref, http.Header{"Content-Type": {mt}}, strings.NewReader(string(raw)), int64(len(raw)), 201)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

func main() {
	planFile := flag.String("plan", "plan.json", "what to copy")
	jobs := flag.Int("j", 8, "images in flight")
	flag.Parse()
	data, err := os.ReadFile(*planFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var p plan
	if err := json.Unmarshal(data, &p); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	work := make(chan image)
	var wg sync.WaitGroup
	var failed sync.Map
	for range *jobs {
		wg.Go(func() {
			for im := range work {
				if err := copyManifest(p, im.Repo, im.Dst, im.Tag); err != nil {
					failed.Store(im, err)
				}
			}
		})
	}
	for _, im := range p.Images {
		work <- im
	}
	close(work)
	wg.Wait()
	code := 0
	failed.Range(func(k, v any) bool {
		fmt.Fprintf(os.Stderr, "%v: %v\n", k, v)
		code = 1
		return true
	})
	os.Exit(code)
}
