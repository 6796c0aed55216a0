package shard

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/imagesync/imagesync/sync/rules"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Spec
		wantErr bool
	}{
		{in: "0/4", want: Spec{0, 4}},
		{in: "3/4", want: Spec{3, 4}},
		{in: "0/1", want: Spec{0, 1}},
		{in: "4/4", wantErr: true},
		{in: "-1/4", wantErr: true},
		{in: "1/0", wantErr: true},
		{in: "1", wantErr: true},
		{in: "a/b", wantErr: true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// plan is 48 jobs into 12 destination repositories: 4 tags each; the sources
// of the first 4 repositories are also copied to a second registry.
func plan() []rules.Job {
	var jobs []rules.Job
	for r := 0; r < 12; r++ {
		for tag := 0; tag < 4; tag++ {
			src := rules.Ref{Registry: "src.example", Repository: fmt.Sprintf("team/app%d", r), Tag: fmt.Sprintf("v%d", tag)}
			dst := rules.Ref{Registry: "dst.example", Repository: fmt.Sprintf("mirror/app%d", r), Tag: src.Tag}
			jobs = append(jobs, rules.Job{Source: src, Destination: dst})
			if r < 4 {
				dst2 := rules.Ref{Registry: "backup.example", Repository: fmt.Sprintf("app%d", r), Tag: src.Tag}
				jobs = append(jobs, rules.Job{Source: src, Destination: dst2})
			}
		}
	}
	return jobs
}

func TestShardsPartitionThePlan(t *testing.T) {
	jobs := plan()
	for _, n := range []int{1, 2, 3, 4, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			seen := map[string]int{}        // job → shard
			repoShard := map[string]int{}   // destination repository → shard
			sourceShard := map[string]int{} // source reference → shard
			for i := 0; i < n; i++ {
				for _, j := range Select(Spec{i, n}, jobs) {
					key := j.Source.String() + " → " + j.Destination.String()
					if prev, dup := seen[key]; dup {
						t.Fatalf("%s in shards %d and %d", key, prev, i)
					}
					seen[key] = i
					if prev, ok := repoShard[j.Destination.Repo()]; ok && prev != i {
						t.Errorf("repository %s split over shards %d and %d", j.Destination.Repo(), prev, i)
					}
					repoShard[j.Destination.Repo()] = i
					if prev, ok := sourceShard[j.Source.String()]; ok && prev != i {
						t.Errorf("source %s read in shards %d and %d", j.Source, prev, i)
					}
					sourceShard[j.Source.String()] = i
				}
			}
			if len(seen) != len(jobs) {
				t.Fatalf("shards hold %d jobs, the plan %d", len(seen), len(jobs))
			}
			for _, j := range jobs {
				if _, ok := seen[j.Source.String()+" → "+j.Destination.String()]; !ok {
					t.Errorf("%s → %s in no shard", j.Source, j.Destination)
				}
			}
			if n == 4 {
				used := map[int]bool{}
				for _, s := range repoShard {
					used[s] = true
				}
				if len(used) < 2 {
					t.Errorf("12 repositories all in one of 4 shards")
				}
			}
		})
	}
}

// The assignment of a job depends on names only: the order in which jobs
// were listed, or jobs of other repositories, change nothing.
func TestAssignIsDeterministic(t *testing.T) {
	jobs := plan()
	want := map[string]int{}
	for i, s := range Assign(jobs, 5) {
		want[jobs[i].Destination.String()] = s
	}
	shuffled := append([]rules.Job(nil), jobs...)
	rand.New(rand.NewSource(1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	shuffled = shuffled[:len(shuffled)-7] // a few tags fewer: another listing
	for i, s := range Assign(shuffled, 5) {
		if d := shuffled[i].Destination.String(); want[d] != s {
			t.Errorf("%s: shard %d, was %d", d, s, want[d])
		}
	}
}

// Every job into one image layout runs in one shard: a layout has one writer.
func TestAssignKeepsALayoutTogether(t *testing.T) {
	var jobs []rules.Job
	for i := range 40 {
		src := rules.Ref{Registry: "r.io", Repository: fmt.Sprintf("ns/app%d", i), Tag: "1"}
		jobs = append(jobs, rules.Job{Source: src, Destination: rules.Ref{Registry: "oci:bundle", Repository: src.Repo(), Tag: "1"}})
	}
	got := Assign(jobs, 8)
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("job %d in shard %d, job 0 in %d", i, got[i], got[0])
		}
	}
}
