// lifecycle.go is the overview of a proposal's life in the coordinator, and the
// interfaces of the collaborators the lifecycle engine calls.
//
// A proposal moves through the states of states.go (the transitions table), each
// move a compare-and-swap on its version that rewrites its decision record
// (record.go) and stages its audit events in the same transaction (moves.go):
//
//	submit (coordinator.go)      SUBMITTED ─▶ NEGOTIATING, in the submission's commit
//	engine (engine.go) ─▶ step   negotiate.go: start and follow the negotiation
//	                             (Negotiator), record AGREED | REJECTED | EXPIRED with
//	                             the consensus bundle (consensus.go), reclassification
//	                             (policy.go) and the score (score.go, Scorer): SCORED
//	                             [─▶ PENDING_APPROVAL], in one commit
//	enact, rollback (API)        enact.go: dry run, enactment with pre/post
//	                             snapshots, rollback
//
// Reads never move a proposal; only the engine and the enact and rollback calls do.

package coordinator

import (
	"context"
	"time"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
)

// NegotiationRequest is everything the negotiator needs; it reads no coordinator table.
type NegotiationRequest struct {
	TenantID, ProposalID string
	// NegotiationID is the id the coordinator chose and recorded for the negotiation:
	// a start retried after a crash finds the same negotiation.
	NegotiationID  string
	Manifest       *typesv1.Manifest
	ManifestSHA256 string
	Quorum         string    // the policy's quorum name, e.g. "majority"
	Deadline       time.Time // absolute: a retried start never extends it
}

// Negotiator starts and reads negotiations (the federated negotiator, in process or
// over gRPC). Calls from the lifecycle engine carry no caller: implementations act as
// the fabric's service identity for the tenant.
type Negotiator interface {
	// Start is idempotent per negotiation id: a second start returns the negotiation.
	Start(ctx context.Context, req NegotiationRequest) (*negotiatorv1.Negotiation, error)
	Status(ctx context.Context, tenantID, negotiationID string) (*negotiatorv1.Negotiation, error)
	// Wait returns the negotiation once it has ended, or ctx's error when ctx ends first.
	Wait(ctx context.Context, tenantID, negotiationID string) (*negotiatorv1.Negotiation, error)
}

// ScoreInput is everything the scorer needs; it reads no coordinator table.
type ScoreInput struct {
	TenantID, ProposalID string
	Manifest             *typesv1.Manifest // the manifest to enact (agreed, else submitted)
	Impact               string
	Votes                *coordinatorv1.VoteSummary
	History              *scorerv1.HistoryCounts
}

// Scorer scores proposals (the confidence scorer, in process or over gRPC).
type Scorer interface {
	Score(ctx context.Context, in ScoreInput) (*scorerv1.ScoreResponse, error)
}
