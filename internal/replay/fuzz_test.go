package replay_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/replay"
)

// FuzzParse feeds untrusted request bodies (as the REST gateway decodes them) to Parse:
// it never panics, refuses only with INVALID_ARGUMENT or UNIMPLEMENTED, and what it
// accepts is within the bounds; a candidate it accepts re-decides a decision without
// panicking and reports an outcome.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"proposal_ids":["01JTESTAAAAAAAAAAAAAAAAAAA"]}`,
		`{"from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","candidate_policy":"version: 1\ndefaults:\n  quorum: unanimous\n"}`,
		`{"proposal_ids":["01JTESTAAAAAAAAAAAAAAAAAAA"],"candidate_regions":[{"region":"eu-west","weight":"3"},{"region":"us-east"}]}`,
		`{"proposal_ids":["01JTESTAAAAAAAAAAAAAAAAAAA"],"candidate_policy":"version: 1\ndefaults:\n  impact_rules:\n    - {name: x, when: \"abs_replica_delta >= 2\", impact: high, reason: \"{replica_delta}\"}\n"}`,
		`{"proposal_ids":["01JTESTAAAAAAAAAAAAAAAAAAA"],"candidate_policy":"version: 1\ndefaults:\n  quorum: weighted\n  region_weights: {eu-west: 1e308}\n","candidate_regions":[{"region":"eu-west"}]}`,
		`{"proposal_ids":["01JTESTAAAAAAAAAAAAAAAAAAA"],"candidate_model":"m"}`,
		`{"from":"2026-12-02T00:00:00Z","to":"2026-12-01T00:00:00Z"}`,
		`{"proposal_ids":["01JTESTAAAAAAAAAAAAAAAAAAA"],"candidate_policy":"version: 1\ndefaults:\n  approval_when: int(parameters[\"x\"]) > 1\n"}`,
	} {
		f.Add([]byte(s))
	}
	rec := decision(f, "svc", 2, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED, "low", "eu-west", "us-east")
	f.Fuzz(func(t *testing.T, body []byte) {
		req := &canaryv1.ReplayRequest{}
		if protojson.Unmarshal(body, req) != nil {
			return
		}
		sel, cand, err := replay.Parse(req)
		if err != nil {
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.Unimplemented {
				t.Fatalf("refused with %v: %v", c, err)
			}
			return
		}
		if len(sel.IDs) > replay.MaxProposals || len(cand.Regions) > replay.MaxRegions || len(req.GetCandidatePolicy()) > replay.MaxPolicyBytes {
			t.Fatalf("accepted beyond the bounds: %d ids, %d regions, %d policy bytes", len(sel.IDs), len(cand.Regions), len(req.GetCandidatePolicy()))
		}
		if len(sel.IDs) == 0 && !sel.To.After(sel.From) {
			t.Fatalf("accepted an empty selection: %+v", sel)
		}
		res := replay.Redecide(rec, cand)
		if res.GetCandidateOutcome() == "" || len(res.GetReasons()) == 0 {
			t.Fatalf("no outcome or no reasons: %v", res)
		}
		if strings.Contains(replay.Table([]*canaryv1.ReplayResult{res}, nil), "\n\n") {
			t.Fatalf("table has an empty line")
		}
	})
}
