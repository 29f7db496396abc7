// record.go holds the decision record, the decision fields of a proposal stored as
// protojson beside its columns: decoding it (decision, Record), its cache keyed by the
// proposal's version, encoding it (decisionJSON), the columns a move sets beside it
// (columns), and decoding the submitted manifest (submittedManifest).

package coordinator

import (
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
	"google.golang.org/protobuf/encoding/protojson"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/store"
)

// decision decodes the proposal's decision record: the decision fields of a
// coordinatorv1.Proposal, stored as canonical protojson. The result is shared and must
// not be modified (planMove edits a clone).
func decision(p *store.Proposal) (*coordinatorv1.Proposal, error) {
	key := decisionKey{p.ID, p.Version}
	if d, ok := decisions.Get(key); ok {
		return d, nil
	}
	d := &coordinatorv1.Proposal{}
	if len(p.Decision) > 0 {
		if err := protojson.Unmarshal(p.Decision, d); err != nil {
			return nil, fmt.Errorf("coordinator: decision record of %s: %w", p.ID, err)
		}
	}
	decisions.Add(key, d)
	return d, nil
}

// Record is p's decision record, decoded (and cached) as the coordinator reads it, for
// services sharing its store. The result is shared and must not be modified.
func Record(p *store.Proposal) (*coordinatorv1.Proposal, error) { return decision(p) }

// decisionJSON encodes a decision record for the store. It is plain protojson, not
// RFC 8785: the record is read back by the coordinator and never hashed or signed (what
// is signed, the consensus bundle, is canonicalised on its own), and canonicalising
// its few kilobytes on every transition was a quarter of the fabric's allocations.
func decisionJSON(d *coordinatorv1.Proposal) ([]byte, error) {
	raw, err := decisionMarshal.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("coordinator: decision record: %w", err)
	}
	return raw, nil
}

var decisionMarshal = protojson.MarshalOptions{UseProtoNames: true}

// decisions caches decoded decision records. A proposal's version identifies its
// record (every change of the record is a compare-and-swap that moves the version on),
// and the record is a few kilobytes of JSON that every step of a request reads again.
var decisions = mustLRU[decisionKey, *coordinatorv1.Proposal](8192)

type decisionKey struct {
	id      string
	version int64
}

func mustLRU[K comparable, V any](size int) *lru.Cache[K, V] {
	c, err := lru.New[K, V](size)
	if err != nil {
		panic(err) // only for size <= 0
	}
	return c
}

// columns are what a move sets beside the decision record.
type columns struct {
	// post is the post-state hash; "" keeps p's.
	post string
	// bundle is the signed consensus bundle's stored form; nil keeps p's.
	bundle []byte
	// impact is a raised impact (a reclassification); "" keeps p's. The proposal then
	// needs an approver, so it is dry run by default until one is recorded (P3).
	impact string
}

// submittedManifest decodes p's stored manifest.
func submittedManifest(p *store.Proposal) (*typesv1.Manifest, error) {
	m, err := manifestpkg.Decode(p.Manifest)
	if err != nil {
		return nil, fmt.Errorf("coordinator: stored manifest of %s: %w", p.ID, err)
	}
	return m, nil
}
