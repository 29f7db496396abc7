package scorer

import (
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
)

// ProposalInfo is what the scorer knows about the proposal it scores: what its
// request carries (the scorer reads no other service's records).
type ProposalInfo struct {
	ID       string
	TenantID string
	Action   string
	Target   string
	// Regions as in the manifest; empty means the tenant's default region.
	Regions []string
	// Parameters is the manifest's open JSON (numbers as float64).
	Parameters map[string]any
	// Impact is the effective impact ("low", "medium", "high"); "" counts as medium.
	Impact string
}

// proposalInfo reads the proposal to score from its request.
func proposalInfo(tenant string, req *scorerv1.ScoreRequest) ProposalInfo {
	m := req.GetManifest()
	params := map[string]any{}
	if m.GetParameters() != nil {
		params = m.GetParameters().AsMap()
	}
	impact := req.GetImpact()
	if impact == "" {
		impact = m.GetImpact()
	}
	return ProposalInfo{ID: req.GetProposalId(), TenantID: tenant, Action: m.GetAction(), Target: m.GetTarget(),
		Regions: m.GetRegions(), Parameters: params, Impact: impact}
}

// history picks the evidence of the request's outcome counts: the decisions with the
// same action and target when any of them finished, else those with the same action
// on other targets, else none (the prior alone). A manifest without an action has no
// similar decisions.
func history(p ProposalInfo, c *scorerv1.HistoryCounts) HistoryInput {
	if p.Action == "" {
		return HistoryInput{Scope: ScopeNone}
	}
	if ok, bad := int(c.GetActionTargetSuccesses()), int(c.GetActionTargetFailures()); p.Target != "" && ok+bad > 0 {
		return HistoryInput{Successes: ok, Failures: bad, Scope: ScopeActionTarget}
	}
	if ok, bad := int(c.GetActionSuccesses()), int(c.GetActionFailures()); ok+bad > 0 {
		return HistoryInput{Successes: ok, Failures: bad, Scope: ScopeAction}
	}
	return HistoryInput{Scope: ScopeNone}
}
