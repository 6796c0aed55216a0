package main

import (
	"time"

	"github.com/imagesync/imagesync/sync/config"
)

// Selection are the one-off arguments and the filter flags. The flags apply
// to every rule that does not set its own (in a config file, they replace
// its defaults:).
type Selection struct {
	Refs []string `arg:"" optional:"" name:"image" help:"One-off copy without a file: SRC DST [DST…] (SRC as a rule key: repo, repo:tag, repo:t1,t2, repo@digest; REGISTRY/team/* or REGISTRY/** for every repository the catalog lists)."`

	Include       []string      `placeholder:"REGEX" sep:"none" help:"Keep only tags in which one of these regular expressions matches (anchor with ^ and $; repeatable)."`
	Exclude       []string      `placeholder:"REGEX" sep:"none" help:"Drop tags in which one of these regular expressions matches (anchor with ^ and $; repeatable)."`
	Semver        string        `placeholder:"CONSTRAINT" help:"Keep only tags that are versions inside the constraint, e.g. '>=1.25.0 <2'."`
	Latest        int           `placeholder:"N" help:"After the other tag filters, keep the N highest versions."`
	Platform      []string      `placeholder:"OS/ARCH[/VARIANT]" help:"Keep only these platforms of multi-platform images (repeatable or comma-separated)."`
	PlatformMode  string        `name:"platform-mode" enum:"rewrite,keep-index" default:"rewrite" help:"With a platform filter: rewrite the index with the kept children (new digest), or keep-index: copy only the kept children and push the original index (digest kept)."`
	Referrers     bool          `help:"Copy the referrers of every image (signatures, SBOMs, attestations: the OCI referrers API, its tag fallback, cosign's tags), after it."`
	ArtifactTypes []string      `name:"artifact-type" placeholder:"TYPE" help:"With --referrers: only referrers of these artifact types (repeatable)."`
	MinAge        time.Duration `name:"min-age" placeholder:"DURATION" help:"Hold back a tag whose digest the ledger first saw less than DURATION ago (e.g. 30m, 2h): copied by a later run once old enough; a tag that moves starts again."`
	Prune         bool          `help:"Delete, in the destination repositories of rules that list tags, the tags imagesync wrote (the ledger says which) that the rule no longer selects at the source; never a tag written by someone else, never when the listing failed or came back empty, never more than half of a repository's tags without --prune-force."`
	PruneForce    bool          `name:"prune-force" help:"With --prune: delete even more than half of a repository's tags."`
	Immutable     []string      `placeholder:"REGEX" sep:"none" help:"Tags that never move once pushed (e.g. '^v[0-9.]+$'; repeatable): once the ledger saw one copied, it is skipped with no request to either registry."`
}

// configFlags are the flags sync/config reads.
func (in *Inputs) configFlags(rc *runContext) config.Flags {
	return config.Flags{
		Auth: in.Auth, Images: in.Images, Config: in.Config, File: in.File, Refs: in.Refs,
		Filters: config.Filters{
			Include: in.Include, Exclude: in.Exclude, Semver: in.Semver, Latest: in.Latest,
			Platform: in.Platform, PlatformMode: in.PlatformMode,
			Referrers: in.Referrers, ArtifactTypes: in.ArtifactTypes,
			Immutable: in.Immutable, MinAge: in.MinAge, Prune: in.Prune, PruneForce: in.PruneForce,
			OS: in.OS, Arch: in.Arch,
		},
		DefaultRegistry: in.Registry, DefaultNamespace: in.Namespace,
		Run:         config.Run{Proc: in.Proc, Retries: in.Retries, MaxConns: in.MaxConns, Rate: in.Rate},
		Explicit:    rc.explicit,
		SkipInvalid: in.SkipInvalidRules,
		LookupEnv:   rc.env.lookup,
	}
}
