package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Bounds of one tag listing. They are generous (Docker Hub's largest
// repositories have tens of thousands of tags) and stop a registry whose
// pagination never ends.
var (
	maxTagPages = 5000     // pages per listing
	maxTags     = 500_000  // tags per listing
	maxTagBytes = 64 << 20 // bytes of tag-list bodies per listing
)

// Tags lists every tag, following the Link header across pages. Tags that
// do not follow the distribution grammar are returned apart in invalid and
// never used in a URL. A listing whose pagination repeats a page, leaves
// the repository's tags/list or passes the bounds above fails.
func (r *Repo) Tags(ctx context.Context) (tags, invalid []string, err error) {
	return r.list(ctx, listing{
		what:  "tag list of " + r.String(),
		first: "/tags/list?n=1000",
		path:  "/v2/" + r.Name + "/tags/list",
		place: "the repository's tags/list",
		field: "tags", noun: "tags",
		valid: ValidTag,
		pages: maxTagPages, items: maxTags, bytes: maxTagBytes,
	})
}

// listing is one paginated list of names: a repository's tags, or a
// registry's catalog.
type listing struct {
	what  string            // "tag list of REG/REPO", for errors
	first string            // the first page, below /v2/<name>
	path  string            // the URL path every page must keep
	place string            // what path is, for errors
	field string            // the JSON field holding the names
	noun  string            // "tags", for the bound errors
	valid func(string) bool // the grammar a name must follow to be used
	// bounds of the whole listing
	pages, items, bytes int
}

// list reads every page of l, following the Link header. Names that fail
// l.valid come back apart in invalid and never reach a URL.
func (r *Repo) list(ctx context.Context, l listing) (names, invalid []string, err error) {
	next := l.first
	seen := map[string]bool{}
	budget := int64(l.bytes)
	pages := 0
	for next != "" {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if pages++; pages > l.pages {
			return nil, nil, Permanent(fmt.Errorf("%s: more than %d pages", l.what, l.pages))
		}
		body, hdr, err := r.getSmall(ctx, next, "", budget+1)
		if err != nil {
			return nil, nil, err
		}
		if budget -= int64(len(body)); budget < 0 {
			return nil, nil, Permanent(fmt.Errorf("%s: more than %d bytes", l.what, l.bytes))
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, nil, Permanent(fmt.Errorf("%s: %w", l.what, err))
		}
		var items []string
		if raw, ok := page[l.field]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, nil, Permanent(fmt.Errorf("%s: %s: %w", l.what, l.field, err))
			}
		}
		for _, t := range items {
			if l.valid(t) {
				names = append(names, t)
			} else {
				invalid = append(invalid, t)
			}
		}
		if len(names)+len(invalid) > l.items {
			return nil, nil, Permanent(fmt.Errorf("%s: more than %d %s", l.what, l.items, l.noun))
		}
		base, _ := url.Parse(r.h.scheme + "://" + r.h.reg.RegistryStr() + "/v2/" + r.Name + next)
		if strings.HasPrefix(next, "http") {
			base, _ = url.Parse(next)
		}
		if next, err = nextLink(base, hdr.Get("Link")); err != nil {
			return nil, nil, Permanent(fmt.Errorf("%s: %w", l.what, err))
		}
		if next == "" {
			break
		}
		u, _ := url.Parse(next)
		if u == nil || !sameHost(u, r.h.reg.RegistryStr()) || u.Path != l.path {
			return nil, nil, Permanent(fmt.Errorf("%s: the next page (Link header) leaves %s", l.what, l.place))
		}
		if seen[next] {
			return nil, nil, Permanent(fmt.Errorf("%s: the Link header repeats a page: pagination loops", l.what))
		}
		seen[next] = true
	}
	return names, invalid, nil
}

func nextLink(base *url.URL, link string) (string, error) {
	if link == "" {
		return "", nil
	}
	start := strings.IndexByte(link, '<')
	end := strings.IndexByte(link, '>')
	if start < 0 || end < start {
		return "", fmt.Errorf("malformed Link header")
	}
	u, err := base.Parse(link[start+1 : end])
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// Missing reports whether the registry says the repository does not exist:
// its tag list answers 404 with NAME_UNKNOWN. Such a repository holds no
// blob, so a copy into it need not ask for each blob before sending it. Any
// other answer (a tag list, another error, a 404 without that code) is
// false: not known to be missing.
func (r *Repo) Missing(ctx context.Context) (bool, error) {
	req, err := r.newRequest(ctx, http.MethodGet, "/tags/list?n=1", nil)
	if err != nil {
		return false, err
	}
	resp, err := r.do(ctx, req)
	if err != nil {
		return false, err
	}
	if resp.StatusCode == http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return false, nil
	}
	e := newError(resp) // reads at most 64 KiB and closes
	return e.Status == http.StatusNotFound && e.HasCode(transport.NameUnknownErrorCode), nil
}
