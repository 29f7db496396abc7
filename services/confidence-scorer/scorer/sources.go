package scorer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/decision-fabric/fabric/internal/store"
)

// ErrNotFound is what a ProposalSource returns (wrapped or not) for a proposal that does
// not exist for the tenant asked about, including one that belongs to another tenant.
var ErrNotFound = errors.New("scorer: proposal not found")

// ProposalInfo is what the scorer needs to know about a proposal.
type ProposalInfo struct {
	ID       string
	TenantID string
	// Status is the stored status name, e.g. "AGREED".
	Status string
	Action string
	Target string
	// Regions as in the manifest; empty means the tenant's default region.
	Regions []string
	// Parameters is the manifest's open JSON (numbers as float64).
	Parameters map[string]any
	// Impact is the effective impact ("low", "medium", "high"); "" counts as medium.
	Impact string
}

// ProposalSource finds proposals. Implementations MUST be tenant-scoped: a proposal of
// another tenant is ErrNotFound, never returned.
type ProposalSource interface {
	Get(ctx context.Context, tenantID, proposalID string) (ProposalInfo, error)
}

// StoreProposals reads proposals straight from the fabric's store (same process or same
// database as the coordinator).
type StoreProposals struct{ Store store.Store }

// Get implements ProposalSource.
func (s StoreProposals) Get(ctx context.Context, tenantID, proposalID string) (ProposalInfo, error) {
	p, err := s.Store.Proposals().Get(ctx, tenantID, proposalID)
	if errors.Is(err, store.ErrNotFound) {
		return ProposalInfo{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if err != nil {
		return ProposalInfo{}, fmt.Errorf("scorer: read proposal: %w", err)
	}
	m, err := decodeManifest(p.Manifest)
	if err != nil {
		return ProposalInfo{}, fmt.Errorf("scorer: stored manifest of %s: %w", p.ID, err)
	}
	impact := p.Impact
	if impact == "" {
		impact = m.Impact
	}
	return ProposalInfo{
		ID: p.ID, TenantID: p.TenantID, Status: p.Status,
		Action: m.Action, Target: m.Target, Regions: m.Regions, Parameters: m.Parameters, Impact: impact,
	}, nil
}

// VoteSource reports how the regions voted on a proposal.
type VoteSource interface {
	// Agreement returns the accepting weight and the total weight of the votes cast in
	// the final round of the proposal's negotiation; found is false while no round has
	// completed (no negotiation yet, or still in its first round).
	Agreement(ctx context.Context, tenantID, proposalID string) (accepted, total float64, found bool, err error)
}

// NoVotes is a VoteSource for deployments without a negotiator: never found, so vote
// agreement counts as neutral.
type NoVotes struct{}

// Agreement implements VoteSource.
func (NoVotes) Agreement(context.Context, string, string) (float64, float64, bool, error) {
	return 0, 0, false, nil
}

// manifest is the part of the canonical manifest JSON (proto field names) the scorer reads.
type manifest struct {
	Action     string         `json:"action"`
	Target     string         `json:"target"`
	Regions    []string       `json:"regions"`
	Impact     string         `json:"impact"`
	Parameters map[string]any `json:"parameters"`
}

func decodeManifest(raw []byte) (manifest, error) {
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return manifest{}, err
	}
	if m.Parameters == nil {
		m.Parameters = map[string]any{}
	}
	return m, nil
}

// Stored statuses that count as outcomes in the history.
const (
	statusEnacted      = "ENACTED"        // success: enacted and (still) not rolled back
	statusRolledBack   = "ROLLED_BACK"    // failure
	statusDryRunFailed = "DRY_RUN_FAILED" // failure
)

// history counts the outcomes of the tenant's earlier decisions like p: same action and
// target, or, when the target has none, same action on any target. It counts the newest
// store.MaxListLimit finished proposals like p through the store's index (no manifest is
// read); p itself never counts.
func history(ctx context.Context, st store.Store, p ProposalInfo) (HistoryInput, error) {
	finished := []string{statusEnacted, statusRolledBack, statusDryRunFailed}
	tally := func(target string) (ok, bad int, err error) {
		counts, err := st.Proposals().History(ctx, p.TenantID, p.Action, target, finished, store.MaxListLimit)
		if err != nil {
			return 0, 0, fmt.Errorf("scorer: history: %w", err)
		}
		// A proposal re-scored after it finished is in its own history: take it out.
		if counts[p.Status] > 0 {
			counts[p.Status]--
		}
		return counts[statusEnacted], counts[statusRolledBack] + counts[statusDryRunFailed], nil
	}
	if p.Action == "" {
		return HistoryInput{Scope: ScopeNone}, nil
	}
	if p.Target != "" {
		ok, bad, err := tally(p.Target)
		if err != nil {
			return HistoryInput{}, err
		}
		if ok+bad > 0 {
			return HistoryInput{Successes: ok, Failures: bad, Scope: ScopeActionTarget}, nil
		}
	}
	ok, bad, err := tally("")
	if err != nil {
		return HistoryInput{}, err
	}
	if ok+bad > 0 {
		return HistoryInput{Successes: ok, Failures: bad, Scope: ScopeAction}, nil
	}
	return HistoryInput{Scope: ScopeNone}, nil
}
