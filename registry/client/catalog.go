package client

import (
	"context"
	"fmt"
	"net/http"
)

// Bounds of one catalog listing (GET /v2/_catalog). A registry of a
// hundred thousand repositories is far beyond the largest private
// registries; a catalog that pages without end or swells past these fails.
var (
	maxCatalogPages = 1000
	maxRepositories = 100_000
	maxCatalogBytes = 16 << 20
)

// Catalog lists the repositories of a registry through /v2/_catalog,
// paginated, bounded and validated like a tag list (Repo.Tags): names that
// are not valid repository names come back apart in invalid and never
// reach a URL. prefix ("team", or "") only picks the credentials, like a
// repository does. A registry that refuses the catalog (401, 403, 404:
// Docker Hub, Harbor for non-admins, most cloud registries without the
// right role) gets an error that says so.
func (c *Client) Catalog(ctx context.Context, registry, prefix string) (repos, invalid []string, err error) {
	if prefix != "" && !ValidRepository(prefix) {
		return nil, nil, Permanent(fmt.Errorf("repository prefix %q: %w", clip(prefix), ErrInvalidReference))
	}
	access, err := c.kc.Resolve(ctx, registry, prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("credentials for %s: %w", registry, err)
	}
	h, err := c.host(registry, access.Insecure, access.TLS)
	if err != nil {
		return nil, nil, err
	}
	r := &Repo{c: c, h: h, Registry: registry, Access: access, scope: "registry:catalog:*"}
	repos, invalid, err = r.list(ctx, listing{
		what:  "repository catalog of " + registry,
		first: "_catalog?n=1000",
		path:  "/v2/_catalog",
		place: "the registry's /v2/_catalog",
		field: "repositories", noun: "repositories",
		valid: ValidRepository,
		pages: maxCatalogPages, items: maxRepositories, bytes: maxCatalogBytes,
	})
	if s := status(err); s == http.StatusUnauthorized || s == http.StatusForbidden || s == http.StatusNotFound {
		return nil, nil, Permanent(&CatalogRefusedError{Registry: registry, Status: s, Err: err})
	}
	return repos, invalid, err
}

// CatalogRefusedError is a registry that does not list its repositories
// to these credentials.
type CatalogRefusedError struct {
	Registry string
	Status   int
	Err      error
}

func (e *CatalogRefusedError) Error() string {
	return fmt.Sprintf("%s refuses to list its repositories (GET /v2/_catalog: %d %s): the registry or these credentials do not allow the catalog (Docker Hub never does, Harbor and most cloud registries only for administrators); name the repositories instead (a repositories: list of names in the config file, or one rule per repository)",
		e.Registry, e.Status, http.StatusText(e.Status))
}

func (e *CatalogRefusedError) Unwrap() error { return e.Err }
