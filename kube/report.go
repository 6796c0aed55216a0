package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/imagesync/imagesync/sync/report"
)

// reportKey is the ConfigMap key holding a shard's ShardReport.
const reportKey = "report.json"

// maxFailedListed bounds the failed jobs a shard lists (a ConfigMap holds
// at most 1 MiB); the rest are counted.
const maxFailedListed = 2000

// ShardReport is what one shard writes to ConfigMap <job>-shard-<I>: the
// summary of `sync -o json` and its failed jobs.
type ShardReport struct {
	Job           string            `json:"job"`
	Shard         int               `json:"shard"`
	Shards        int               `json:"shards"`
	Jobs          int               `json:"jobs"`   // jobs of this shard
	Report        report.SyncReport `json:"report"` // Jobs: the failed ones only
	FailedOmitted int               `json:"failedOmitted,omitempty"`
}

// NewShardReport keeps the summary and the failed jobs of a sync report.
func NewShardReport(job string, shard, shards int, rep report.SyncReport) ShardReport {
	sr := ShardReport{Job: job, Shard: shard, Shards: shards, Jobs: len(rep.Jobs), Report: rep}
	sr.Report.Jobs = []report.SyncJob{}
	for _, j := range rep.Jobs {
		if j.Action != "failed" {
			continue
		}
		if len(sr.Report.Jobs) == maxFailedListed {
			sr.FailedOmitted++
			continue
		}
		sr.Report.Jobs = append(sr.Report.Jobs, j)
	}
	return sr
}

// WriteShardReport creates or replaces ConfigMap <job>-shard-<I>.
func WriteShardReport(ctx context.Context, cfg *rest.Config, namespace string, r ShardReport) error {
	a, err := newAPI(cfg)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ShardConfigMap(r.Job, r.Shard),
			Namespace: namespace,
			Labels:    map[string]string{LabelName: appName, LabelInstance: r.Job, LabelShard: strconv.Itoa(r.Shard)},
		},
		Data: map[string]string{reportKey: string(b)},
	}
	if _, err := (resource{a.core, namespace, "configmaps"}).upsert(ctx, cm, &corev1.ConfigMap{}); err != nil {
		return fmt.Errorf("writing the shard report %s/%s: %w", namespace, cm.Name, err)
	}
	return nil
}

// Status is a run's shards put together.
type Status struct {
	Job      string
	Shards   int   // as the reports say (0: no report)
	Reported []int // shard indexes that reported, sorted
	Missing  []int // shard indexes without a report
	Jobs     int
	Summary  report.SyncReport // Jobs: the failed jobs of every shard
	// FailedOmitted counts failed jobs the shards did not list.
	FailedOmitted int
	Problems      []string // unreadable reports
}

// ReadStatus reads the shard ConfigMaps of job and adds them up.
func ReadStatus(ctx context.Context, cfg *rest.Config, namespace, job string) (*Status, error) {
	a, err := newAPI(cfg)
	if err != nil {
		return nil, err
	}
	list := &corev1.ConfigMapList{}
	err = resource{a.core, namespace, "configmaps"}.list(ctx, LabelName+"="+appName+","+LabelInstance+"="+job+","+LabelShard, list)
	if err != nil {
		return nil, fmt.Errorf("listing the shard reports of %s in %s: %w", job, namespace, err)
	}
	st := &Status{Job: job}
	st.Summary.Jobs = []report.SyncJob{}
	seen := map[int]bool{}
	for _, cm := range list.Items {
		var r ShardReport
		if err := json.Unmarshal([]byte(cm.Data[reportKey]), &r); err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("configmap %s: %s: %v", cm.Name, reportKey, err))
			continue
		}
		if r.Job != job || cm.Name != ShardConfigMap(job, r.Shard) || r.Shards < 1 || r.Shard < 0 || r.Shard >= r.Shards {
			st.Problems = append(st.Problems, fmt.Sprintf("configmap %s: not a report of %s", cm.Name, job))
			continue
		}
		if st.Shards != 0 && r.Shards != st.Shards {
			st.Problems = append(st.Problems, fmt.Sprintf("configmap %s: from a run of %d shards, others say %d", cm.Name, r.Shards, st.Shards))
			continue
		}
		st.Shards = r.Shards
		seen[r.Shard] = true
		st.Jobs += r.Jobs
		s, a := &st.Summary.Summary, r.Report.Summary
		s.Copied += a.Copied
		s.Skipped += a.Skipped
		s.Filtered += a.Filtered
		s.Failed += a.Failed
		s.Bytes += a.Bytes
		s.BlobsUploaded += a.BlobsUploaded
		s.BlobsMounted += a.BlobsMounted
		s.Requests += a.Requests
		s.Retries += a.Retries
		s.Seconds = max(s.Seconds, a.Seconds) // shards run side by side
		st.Summary.Jobs = append(st.Summary.Jobs, r.Report.Jobs...)
		st.FailedOmitted += r.FailedOmitted
	}
	for i := 0; i < st.Shards; i++ {
		if seen[i] {
			st.Reported = append(st.Reported, i)
		} else {
			st.Missing = append(st.Missing, i)
		}
	}
	sort.Slice(st.Summary.Jobs, func(a, b int) bool {
		x, y := st.Summary.Jobs[a], st.Summary.Jobs[b]
		if x.Source != y.Source {
			return x.Source < y.Source
		}
		return x.Destination < y.Destination
	})
	return st, nil
}
