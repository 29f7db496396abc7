// score.go holds scoring: what the scorer is sent (scoreInput, with the outcome
// counts of similar decisions from the coordinator's own table, historyCounts), the
// moves that record a score (scoredSteps), and scoring an AGREED proposal whose score
// was not recorded with its agreement (scoreAgreed).

package coordinator

import (
	"context"
	"errors"
	"fmt"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/store"
)

// scoreAgreed scores an AGREED proposal whose score could not be recorded with its
// agreement, and moves it to SCORED (and PENDING_APPROVAL when the policy asks).
func (s *Service) scoreAgreed(ctx context.Context, p *store.Proposal) (*store.Proposal, error) {
	if s.deps.Scorer == nil {
		return nil, nil
	}
	d, _, m, err := decisionChange(p)
	if err != nil {
		return nil, err
	}
	sc, err := s.scoreInput(ctx, p, ScoreInput{TenantID: p.TenantID, ProposalID: p.ID, Manifest: m, Impact: p.Impact, Votes: d.GetVotes()})
	if err != nil {
		return nil, err
	}
	return s.moveChain(ctx, p, nil, s.scoredSteps(p, sc)...)
}

func (s *Service) scoreInput(ctx context.Context, p *store.Proposal, in ScoreInput) (*scorerv1.ScoreResponse, error) {
	if s.deps.Scorer == nil {
		return nil, errors.New("coordinator: no scorer")
	}
	history, err := s.historyCounts(ctx, p, in.Manifest)
	if err != nil {
		return nil, err
	}
	in.History = history
	sc, err := s.deps.Scorer.Score(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("coordinator: score: %w", err)
	}
	return sc, nil
}

// scoredSteps record a score, then ask for approval when the policy (as recorded by
// the steps before) requires it.
func (s *Service) scoredSteps(p *store.Proposal, sc *scorerv1.ScoreResponse) []moveStep {
	return []moveStep{
		{to: stScored, edit: func(d *coordinatorv1.Proposal) {
			d.Score = &coordinatorv1.Score{
				Confidence: sc.GetConfidence(), RiskScore: sc.GetRisk().GetScore(), RiskLevel: sc.GetRisk().GetLevel(),
				CostAmount: sc.GetCostEstimate().GetAmount(), CostCurrency: sc.GetCostEstimate().GetCurrency(),
				Explanation: sc.GetExplanation(),
			}
		}},
		{to: stPendingApproval, edit: s.openApproval(p), when: func(d *coordinatorv1.Proposal) bool { return d.GetPolicy().GetApprovalRequired() }},
	}
}

// historyCounts counts the outcomes of the tenant's earlier decisions like m (the
// scorer's history evidence) from the coordinator's own table: successes are ENACTED
// proposals, failures ROLLED_BACK and DRY_RUN_FAILED ones, at action+target scope and
// at action scope, the newest store.MaxListLimit of each; p itself never counts.
func (s *Service) historyCounts(ctx context.Context, p *store.Proposal, m *typesv1.Manifest) (*scorerv1.HistoryCounts, error) {
	out := &scorerv1.HistoryCounts{}
	if m.GetAction() == "" {
		return out, nil
	}
	finished := []string{stEnacted, stRolledBack, stDryRunFailed}
	tally := func(target string) (ok, bad int32, err error) {
		counts, err := s.deps.Store.Proposals().History(ctx, p.TenantID, m.GetAction(), target, finished, store.MaxListLimit)
		if err != nil {
			return 0, 0, fmt.Errorf("coordinator: history: %w", err)
		}
		if counts[p.Status] > 0 && (target == "" || target == p.Target) && m.GetAction() == p.Action {
			counts[p.Status]-- // a proposal scored after it finished is in its own history
		}
		return int32(counts[stEnacted]), int32(counts[stRolledBack] + counts[stDryRunFailed]), nil
	}
	var err error
	if m.GetTarget() != "" {
		if out.ActionTargetSuccesses, out.ActionTargetFailures, err = tally(m.GetTarget()); err != nil {
			return nil, err
		}
	}
	if out.ActionSuccesses, out.ActionFailures, err = tally(""); err != nil {
		return nil, err
	}
	return out, nil
}
