package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
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
	next := "/tags/list?n=1000"
	seen := map[string]bool{}
	budget := int64(maxTagBytes)
	pages := 0
	for next != "" {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if pages++; pages > maxTagPages {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: more than %d pages", r, maxTagPages))
		}
		body, hdr, err := r.getSmall(ctx, next, "", budget+1)
		if err != nil {
			return nil, nil, err
		}
		if budget -= int64(len(body)); budget < 0 {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: more than %d bytes", r, maxTagBytes))
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: %w", r, err))
		}
		for _, t := range page.Tags {
			if ValidTag(t) {
				tags = append(tags, t)
			} else {
				invalid = append(invalid, t)
			}
		}
		if len(tags)+len(invalid) > maxTags {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: more than %d tags", r, maxTags))
		}
		base, _ := url.Parse(r.h.scheme + "://" + r.h.reg.RegistryStr() + "/v2/" + r.Name + next)
		if strings.HasPrefix(next, "http") {
			base, _ = url.Parse(next)
		}
		if next, err = nextLink(base, hdr.Get("Link")); err != nil {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: %w", r, err))
		}
		if next == "" {
			break
		}
		u, _ := url.Parse(next)
		if u == nil || !sameHost(u, r.h.reg.RegistryStr()) || u.Path != "/v2/"+r.Name+"/tags/list" {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: the next page (Link header) leaves the repository's tags/list", r))
		}
		if seen[next] {
			return nil, nil, Permanent(fmt.Errorf("tag list of %s: the Link header repeats a page: pagination loops", r))
		}
		seen[next] = true
	}
	return tags, invalid, nil
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
