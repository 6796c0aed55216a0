package engine

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/imagesync/imagesync/oci"
	"github.com/imagesync/imagesync/sync/ledger"
)

// regStore is a memStore named like a registry repository (reg.example/…).
type regStore struct{ *memStore }

func (r regStore) String() string { return "reg.example/" + r.name }
func (r regStore) Host() string   { return "reg.example" }

// What each kind of reuse knowledge believes and keeps: the ledger as the
// run's belief allows and written unless plan, nothing for none, and this
// run's memory layered over either.
func TestReuseKnowledge(t *testing.T) {
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a := regStore{&memStore{name: "team/a"}}
	b := regStore{&memStore{name: "team/b"}}
	d1, d2, d3 := oci.Digest([]byte("1")), oci.Digest([]byte("2")), oci.Digest([]byte("3"))

	sync := ledgerKnowledge{l: l, believe: belief{l: l}, write: true}
	sync.addBlob(a, d1)
	sync.addManifest(a, d2)
	if !sync.hasBlob(a, d1) || sync.hasBlob(b, d1) || !sync.hasManifest(a, d2) {
		t.Error("the ledger does not answer what was recorded")
	}
	if got := sync.blobHolders(b, d1); !slices.Equal(got, []string{"team/a"}) {
		t.Errorf("mount sources for team/b: %v", got)
	}

	plan := ledgerKnowledge{l: l, believe: belief{l: l}, write: false}
	plan.addBlob(a, d3)
	if !plan.hasBlob(a, d1) || sync.hasBlob(a, d3) {
		t.Error("plan must read the ledger and write nothing")
	}
	refresh := ledgerKnowledge{l: l, believe: belief{l: l, refresh: true}, write: true}
	if refresh.hasBlob(a, d1) || refresh.hasManifest(a, d2) || refresh.blobHolders(b, d1) != nil {
		t.Error("--refresh must believe nothing of the ledger")
	}
	refresh.addBlob(b, d3)
	if !sync.hasBlob(b, d3) {
		t.Error("--refresh must still write the ledger")
	}

	none := noKnowledge{}
	none.addBlob(a, d3)
	if none.hasBlob(a, d3) || none.hasManifest(a, d2) {
		t.Error("none knows something")
	}

	run := layered{mem: newMemoryKnowledge(), past: none}
	run.addBlob(a, d3)
	run.addManifest(a, d3)
	if !run.hasBlob(a, d3) || !run.hasManifest(a, d3) || !slices.Equal(run.blobHolders(b, d3), []string{"team/a"}) {
		t.Error("this run's memory does not answer")
	}
	run.forget(a)
	if run.hasBlob(a, d3) || run.hasManifest(a, d3) {
		t.Error("forget left facts behind")
	}
	layeredLedger := layered{mem: newMemoryKnowledge(), past: sync}
	layeredLedger.forget(a)
	if sync.hasBlob(a, d1) {
		t.Error("forget did not reach the ledger")
	}
}
