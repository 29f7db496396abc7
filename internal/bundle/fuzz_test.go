package bundle_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/decision-fabric/fabric/internal/bundle"
)

// FuzzParseExport feeds untrusted bytes to the export parser and, when they parse, to
// the offline verifier: neither may panic. (TestOneByteChangeFails checks that changes
// are refused.)
func FuzzParseExport(f *testing.F) {
	x, keys := decisionExport(f)
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(x)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"decision-fabric/decision-export/v1","tenant_id":"t1","proposal_id":"p1","entries":[{"index":-1}]}`))
	f.Add([]byte(`{"consensus_bundle":{"bundle":{"type":"decision-fabric/consensus-bundle/v1"},"sha256":"00"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := bundle.ParseExport(data)
		if err != nil {
			return
		}
		_, _ = bundle.VerifyExport(x, keys) // must not panic, whatever the input
	})
}

// FuzzParseConsensus feeds untrusted bytes to the consensus bundle parser.
func FuzzParseConsensus(f *testing.F) {
	fx := newFixture(f)
	payload, err := bundle.Payload(signedBundle(f, fx.in))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(payload)
	f.Add([]byte(`{"type":"decision-fabric/consensus-bundle/v1","manifest":null}`))
	f.Add([]byte(`[]`))
	tr := trust(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := bundle.Parse(data)
		if err != nil {
			return
		}
		_ = c.Check(tr, bundle.Expect{})
		if _, err := c.Canonical(); err != nil {
			t.Fatalf("a parsed bundle does not serialise: %v", err)
		}
	})
}
