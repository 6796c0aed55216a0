// Package shard splits the expanded jobs of a run into N disjoint parts, so
// that N processes (a Kubernetes Indexed Job, N CI runners) can each copy one
// part: shard I of N.
//
// The unit of the partition is the destination repository: all jobs into one
// repository go to one shard, so its blobs are uploaded, mounted and recorded
// by one process. Repositories that are fed by one source reference are kept
// together too (the source manifest and its blobs are then read once for all
// of them). Such a group goes to shard hash(group)%N, where the group is
// named by its smallest repository: the choice depends only on the rules and
// the names, not on what the other shards listed or in which order, so N
// processes that expand the same rules at slightly different times still
// agree on who copies which repository.
package shard

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/sync/rules"
)

// Spec is shard Index of Count (0 <= Index < Count). The zero value means no
// sharding.
type Spec struct {
	Index, Count int
}

// Enabled reports whether the run is split at all.
func (s Spec) Enabled() bool { return s.Count > 0 }

// String is "I/N".
func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Parse reads "I/N" (0 <= I < N).
func Parse(v string) (Spec, error) {
	i, n, ok := strings.Cut(v, "/")
	if !ok {
		return Spec{}, fmt.Errorf("shard %q: want I/N, such as 0/4", v)
	}
	idx, err1 := strconv.Atoi(strings.TrimSpace(i))
	cnt, err2 := strconv.Atoi(strings.TrimSpace(n))
	if err1 != nil || err2 != nil {
		return Spec{}, fmt.Errorf("shard %q: want I/N with whole numbers, such as 0/4", v)
	}
	return New(idx, cnt)
}

// New checks 0 <= index < count.
func New(index, count int) (Spec, error) {
	if count < 1 {
		return Spec{}, fmt.Errorf("shard count %d: want at least 1", count)
	}
	if index < 0 || index >= count {
		return Spec{}, fmt.Errorf("shard index %d: want 0 to %d for %d shards", index, count-1, count)
	}
	return Spec{Index: index, Count: count}, nil
}

// Assign returns the shard (0..n-1) of every job, index for index.
func Assign(jobs []rules.Job, n int) []int {
	out := make([]int, len(jobs))
	if n <= 1 {
		return out
	}
	// Union-find over destination repositories; jobs sharing a source
	// reference join their destination repositories.
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		p, ok := parent[x]
		if !ok {
			parent[x] = x
			return x
		}
		if p == x {
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	union := func(a, b string) {
		ra, rb := find(a), find(b)
		if ra == rb {
			return
		}
		// The smaller name is the root: the group is named by its smallest repository.
		if rb < ra {
			ra, rb = rb, ra
		}
		parent[rb] = ra
	}
	bySource := map[string]string{}
	for _, j := range jobs {
		repo := destKey(j.Destination)
		find(repo)
		src := j.Source.String()
		if first, ok := bySource[src]; ok {
			union(first, repo)
		} else {
			bySource[src] = repo
		}
	}
	for i, j := range jobs {
		out[i] = Of(find(destKey(j.Destination)), n)
	}
	return out
}

// destKey is what a job's destination is grouped by: its repository, or a
// whole image layout (one process writes a layout: it is locked).
func destKey(d rules.Ref) string {
	if rules.IsLayout(d.Registry) {
		return d.Registry
	}
	return d.Repo()
}

// Of is the shard of a group named key among n.
func Of(key string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(h.Sum64() % uint64(n))
}

// Select keeps the jobs of shard s (all of them when s is not enabled).
func Select(s Spec, jobs []rules.Job) []rules.Job {
	if !s.Enabled() {
		return jobs
	}
	var out []rules.Job
	for i, sh := range Assign(jobs, s.Count) {
		if sh == s.Index {
			out = append(out, jobs[i])
		}
	}
	return out
}
