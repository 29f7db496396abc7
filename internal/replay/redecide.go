// Package replay re-decides past decisions under a candidate decision policy and region
// set ("would we still approve?"), from what was recorded: the manifest, the pre-state
// snapshot the change was classified against, the regions' signed votes, the signed
// human approvals and the outcome. It is pure: the sim-canary's Replay RPC reads and
// verifies the records (Verify) and calls Redecide; nothing here writes anywhere.
//
// A decision is re-decided as the coordinator decided it:
//
//  1. classification: the candidate policy runs (internal/classify, the coordinator's
//     own input) on the submitted manifest and, when the regions agreed to a different
//     one, on the agreed manifest too, each against the recorded pre-state; the higher
//     answer counts, as the coordinator's reclassification at agreement does. A change
//     the policy refuses (cost cap, cross-tenant, unknown action) is REFUSED. A policy
//     that errs on a decision fails closed: REFUSED at high impact, as the coordinator
//     refuses a submission its policy cannot classify, with the error reported;
//  2. quorum: the recorded final round of signed votes is recounted (quorum.Recount)
//     under the quorum rule the candidate asks for, over the candidate region set;
//  3. approval: when approval is required, the recorded signed votes are replayed
//     (approval.Tally) under the candidate's approval rules and approval count.
package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/approval"
	"github.com/decision-fabric/fabric/internal/classify"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/world"
)

// Outcomes under the candidate (ReplayResult.candidate_outcome).
const (
	OutcomeRefused  = "REFUSED"
	OutcomeRejected = "REJECTED"
	OutcomePending  = "PENDING_APPROVAL"
	OutcomeApproved = "APPROVED"
	OutcomeDenied   = "DENIED"
	OutcomeProceed  = "PROCEED"
	OutcomeExpired  = "EXPIRED"
	OutcomeError    = "ERROR"
)

// Record is one decision as read, with what its verification established.
type Record struct {
	// Proposal is the decision record (coordinator GetProposal form). When the record
	// verified, its manifest, agreed manifest, approvals and status are the verified
	// ones.
	Proposal *coordinatorv1.Proposal
	// PreState is the pre-state snapshot the change was classified against.
	PreState world.Snapshot
	// Votes is the final round of signed votes (a quorum certificate that verified
	// against the region key registry); nil when none was recorded.
	Votes *quorum.Certificate
	// AgreedManifest is the manifest the regions agreed to when the decision record
	// does not carry it (a change refused at agreement is recorded without it): the
	// negotiator's final manifest. nil: the record's, if any.
	AgreedManifest *typesv1.Manifest
	// VerifyError says what did not verify; "" when everything did.
	VerifyError string
}

// classification is the policy's answer, recorded or under the candidate.
type classification struct {
	impact            string
	quorum            string
	weights           map[string]float64
	approvalRequired  bool
	approvalsRequired int
	reasons           []string
	// refused is set when the policy refuses the change (or cannot classify it).
	refused string
}

// Redecide re-decides rec under cand. It never fails: a record that cannot be
// re-decided is reported with OutcomeError and the reason.
func Redecide(rec Record, cand Candidate) *canaryv1.ReplayResult {
	p := rec.Proposal
	res := &canaryv1.ReplayResult{
		ProposalId: p.GetId(), CreatedAt: p.GetCreatedAt(),
		Change:            strings.TrimSpace(p.GetManifest().GetAction() + " " + p.GetManifest().GetTarget()),
		RecordedOutcome:   StatusName(p.GetStatus()),
		RecordedImpact:    p.GetImpact(),
		Verified:          rec.VerifyError == "",
		VerificationError: rec.VerifyError,
	}
	for _, a := range p.GetApprovals() {
		if approval.Decision(a.GetDecision()) == approval.Approve {
			res.ApprovalsRecorded++
		}
	}

	if p.GetAgreedManifest() == nil && rec.AgreedManifest != nil {
		p = proto.CloneOf(p)
		p.AgreedManifest = rec.AgreedManifest
	}
	if recordedGate(p) == gateRefused && p.GetAgreedManifest() == nil && cand.Policy != nil {
		// Refused at agreement, and the agreed change is not known: nothing to classify.
		res.CandidateOutcome = OutcomeError
		res.Reasons = []string{"not re-decided: the regions agreed on a change the policy refused, and that change is not recorded with the decision (the negotiator's final manifest could not be read)",
			"recorded: " + p.GetReason()}
		return res
	}
	cls := recorded(p)
	if cand.Policy != nil {
		cls = underPolicy(cand.Policy, p, rec.PreState)
	}
	res.CandidateImpact = cls.impact
	if cls.approvalRequired {
		res.ApprovalsRequired = int32(cls.approvalsRequired)
	}

	var why []string
	outcome := ""
	if cand.Policy == nil && recordedGate(p) == gateRefused {
		cls.refused = "refused by the recorded policy: " + p.GetReason()
	}
	if cls.refused != "" {
		outcome = OutcomeRefused
		why = append(why, cls.refused)
	}

	// The vote, recounted.
	if rec.Votes != nil {
		reached, line := recount(rec.Votes, cls, cand)
		res.QuorumReached = proto.Bool(reached)
		why = append(why, line)
		if !reached && outcome == "" {
			outcome = OutcomeRejected
		}
	} else {
		why = append(why, "no final round of signed votes was recorded (the negotiation did not end with one): the vote is not recounted")
		if outcome == "" {
			if bundleless(p.GetStatus()) {
				outcome = StatusName(p.GetStatus()) // the negotiation's outcome stands
			} else {
				// An agreed decision whose signed votes did not verify (or could not be
				// read) is not re-decided as if its quorum held: that would fail open.
				outcome = OutcomeError
				why = append(why, "the signed votes of an agreed decision did not verify: the quorum cannot be recounted")
			}
		}
	}

	// Human approval, replayed.
	if outcome == "" {
		if !cls.approvalRequired {
			outcome = OutcomeProceed
			why = append(why, "no approval required")
		} else {
			st, lines := approvals(p, cls, cand)
			outcome = st
			why = append(why, lines...)
		}
	}
	res.CandidateOutcome = outcome

	rg := recordedGate(p)
	res.Changed = outcome != OutcomeError && gate(outcome) != rg
	lead := fmt.Sprintf("unchanged: %s", describe(rg))
	if res.Changed {
		lead = fmt.Sprintf("changed: recorded %s, candidate %s", describe(rg), describe(gate(outcome)))
	}
	if cls.impact != "" && cls.impact != p.GetImpact() {
		lead += fmt.Sprintf("; impact %s (recorded %s)", cls.impact, orNone(p.GetImpact()))
	}
	res.Reasons = append([]string{lead}, why...)
	res.Reasons = append(res.Reasons, cls.reasons...)
	return res
}

// gate is what c asks of the decision.
func (c classification) gate() classify.Gate {
	return classify.Gate{Impact: c.impact, ApprovalRequired: c.approvalRequired, ApprovalsRequired: c.approvalsRequired}
}

// recorded is the classification the decision was made with.
func recorded(p *coordinatorv1.Proposal) classification {
	pol := p.GetPolicy()
	c := classification{
		impact: p.GetImpact(), quorum: pol.GetQuorum(),
		approvalRequired: pol.GetApprovalRequired(), approvalsRequired: int(pol.GetApprovalsRequired()),
	}
	for _, r := range pol.GetReasons() {
		c.reasons = append(c.reasons, "recorded policy: "+r)
	}
	return c
}

// underPolicy classifies p's change under e, failing closed.
func underPolicy(e *policy.Engine, p *coordinatorv1.Proposal, pre world.Snapshot) classification {
	sub := evaluate(e, p.GetTenantId(), p.GetManifest(), pre, "")
	agreed := p.GetAgreedManifest()
	if agreed == nil || proto.Equal(agreed, p.GetManifest()) || sub.refused != "" {
		return sub
	}
	ag := evaluate(e, p.GetTenantId(), agreed, pre, "at agreement: ")
	if ag.refused != "" {
		ag.quorum = sub.quorum
		return ag
	}
	// The negotiation ran under the submission's quorum; the agreed change is
	// reclassified as the coordinator does it (classify.Reclassify, one rule).
	out := sub
	out.reasons = append(out.reasons, ag.reasons...)
	g, _ := classify.Reclassify(sub.gate(), ag.gate())
	out.impact, out.approvalRequired, out.approvalsRequired = g.Impact, g.ApprovalRequired, g.ApprovalsRequired
	return out
}

// evaluate runs e on manifest m of tenant against the recorded pre-state.
func evaluate(e *policy.Engine, tenant string, m *typesv1.Manifest, pre world.Snapshot, prefix string) classification {
	in, c := classify.Input(tenant, m)
	var err error
	if len(pre.JSON) == 0 {
		in.ImpactUnknown = "no pre-state snapshot was recorded"
	} else if missing := outside(pre, m.GetRegions()); len(missing) > 0 {
		// The coordinator classified an agreed change that moved regions against the
		// world at agreement, which was not recorded: fail closed.
		in.ImpactUnknown = fmt.Sprintf("the change touches %s, which the recorded pre-state does not hold: its size is not known", strings.Join(missing, ", "))
	} else {
		plan, planErr := world.PlanFrom(pre, c)
		if errors.Is(planErr, world.ErrRejected) || planErr == nil {
			err = classify.Size(&in, pre, plan, planErr)
		} else {
			in.ImpactUnknown = "the recorded pre-state cannot be planned against: " + planErr.Error()
		}
	}
	var d policy.Decision
	if err == nil {
		d, err = e.Evaluate(in)
	}
	c2 := classification{impact: d.Impact, quorum: d.Quorum, weights: d.RegionWeights,
		approvalRequired: d.ApprovalRequired, approvalsRequired: d.ApprovalsRequired}
	for _, r := range d.Reasons {
		c2.reasons = append(c2.reasons, prefix+"candidate policy: "+r)
	}
	switch {
	case err == nil:
	case errors.Is(err, policy.ErrUnknownActionRefused), errors.Is(err, policy.ErrCrossTenantDenied), errors.Is(err, policy.ErrCostCapExceeded):
		c2.refused = prefix + "refused by the candidate policy: " + err.Error()
	default:
		// Fails closed: the strictest outcome, as the coordinator refuses a
		// submission its policy cannot classify.
		c2 = classification{impact: policy.ImpactHigh, quorum: d.Quorum, approvalRequired: true, approvalsRequired: 1,
			refused: prefix + "the candidate policy cannot classify this decision, so it counts as refused at high impact (fails closed): " + err.Error()}
	}
	return c2
}

// outside lists the regions of regions the snapshot pre holds no state for.
func outside(pre world.Snapshot, regions []string) []string {
	var doc struct {
		Regions map[string]json.RawMessage `json:"regions"`
	}
	if json.Unmarshal(pre.JSON, &doc) != nil {
		return nil // the plan reports it
	}
	var out []string
	for _, r := range regions {
		if _, ok := doc.Regions[r]; !ok && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// recount counts the recorded votes under the candidate's rule and region set.
func recount(cert *quorum.Certificate, cls classification, cand Candidate) (bool, string) {
	rule := cert.Rule
	if cls.quorum != "" {
		rule = cls.quorum
	}
	recordedWeight := map[string]int64{}
	for _, rk := range cert.RegionKeys {
		recordedWeight[rk.Region] = rk.Weight
	}
	var regions []quorum.RegionKey
	if cand.Regions == nil {
		regions = slices.Clone(cert.RegionKeys)
	} else {
		for _, r := range cand.Regions {
			w := r.Weight
			if w == 0 {
				w = max(recordedWeight[r.Name], 1)
			}
			regions = append(regions, quorum.RegionKey{Region: r.Name, Weight: w})
		}
	}
	if rule == quorum.RuleWeighted && len(cls.weights) > 0 && cand.Regions == nil {
		for i := range regions {
			if w, ok := cls.weights[regions[i].Region]; ok {
				regions[i].Weight = max(int64(math.Round(w)), 1)
			}
		}
	}
	in := map[string]bool{}
	var names []string
	for _, r := range regions {
		in[r.Region] = true
		names = append(names, r.Region)
	}
	verdicts := map[string]string{}
	var dropped []string
	for _, v := range cert.Votes {
		if in[v.Region] {
			verdicts[v.Region] = v.Verdict
		} else {
			dropped = append(dropped, v.Region)
		}
	}
	outcome, why := quorum.Recount(rule, regions, verdicts)
	line := fmt.Sprintf("quorum %s over %s (recorded: %s by %s): %s", rule, strings.Join(names, ", "), cert.Outcome, cert.Rule, why)
	if len(dropped) > 0 {
		line += "; votes of " + strings.Join(dropped, ", ") + " not counted (not in the candidate region set)"
	}
	if outcome == "" {
		line += "; the regions without a recorded vote cannot be asked now, so the quorum is not reached"
	}
	return outcome == quorum.OutcomeAgreed, line
}

// approvals replays the recorded votes under the candidate's approval rules.
func approvals(p *coordinatorv1.Proposal, cls classification, cand Candidate) (string, []string) {
	var rules approval.Rules
	if cand.Policy != nil {
		rules = cand.Policy.ApprovalRules(p.GetTenantId())
	}
	rules.DefaultApprove = max(cls.approvalsRequired, 1)
	req := approval.Request{ProposalID: p.GetId(), Tenant: p.GetTenantId(), Proposer: p.GetCreatedBy(),
		Impact: cls.impact, Created: p.GetCreatedAt().AsTime()}
	// Every recorded vote was cast before the request's deadline: count them all.
	req.Expires = req.Created.Add(time.Nanosecond)
	for _, a := range p.GetApprovals() {
		if t := a.GetDecidedAt().AsTime().Add(time.Nanosecond); t.After(req.Expires) {
			req.Expires = t
		}
	}
	if dl := p.GetApprovalDeadline(); dl != nil && dl.AsTime().After(req.Expires) {
		req.Expires = dl.AsTime()
	}
	votes := make([]approval.Vote, 0, len(p.GetApprovals()))
	for _, a := range p.GetApprovals() {
		votes = append(votes, approval.Vote{Approver: a.GetApprover(), Roles: a.GetRoles(), Groups: a.GetGroups(),
			Decision: approval.Decision(a.GetDecision()), Reason: a.GetReason(), At: a.GetDecidedAt().AsTime()})
	}
	out, refused, err := approval.Tally(req, rules, votes)
	if err != nil {
		return OutcomePending, []string{fmt.Sprintf("approval required (%d); the candidate's approval rules approve nothing: %v", cls.approvalsRequired, err)}
	}
	lines := []string{fmt.Sprintf("approval required: %d approval(s); %d recorded", max(cls.approvalsRequired, 1), countApprove(p))}
	for _, e := range out.Explanation {
		lines = append(lines, "approval: "+e)
	}
	for _, r := range refused {
		lines = append(lines, fmt.Sprintf("approval: the vote of %s does not count under the candidate: %v", r.Vote.Approver, r.Err))
	}
	switch out.Status {
	case approval.Approved:
		return OutcomeApproved, lines
	case approval.Denied:
		return OutcomeDenied, lines
	}
	return OutcomePending, lines
}

func countApprove(p *coordinatorv1.Proposal) int {
	n := 0
	for _, a := range p.GetApprovals() {
		if approval.Decision(a.GetDecision()) == approval.Approve {
			n++
		}
	}
	return n
}

// StatusName is a status's stored form, e.g. "ENACTED".
func StatusName(s coordinatorv1.ProposalStatus) string {
	return strings.TrimPrefix(s.String(), "PROPOSAL_STATUS_")
}

// bundleless says the decision ended, or stands, before the regions' final round.
func bundleless(s coordinatorv1.ProposalStatus) bool {
	switch s {
	case coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SUBMITTED, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_NEGOTIATING,
		coordinatorv1.ProposalStatus_PROPOSAL_STATUS_EXPIRED, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_REJECTED:
		return true
	}
	return false
}

// Gates: where a decision stands with respect to the fabric's gates (policy, quorum,
// approval), the terms outcomes are compared in.
const (
	gateThrough = "through"   // passed every gate (enacted or free to be)
	gatePending = "pending"   // waits for (or ran out of time for) approvals
	gateDenied  = "denied"    // a human denied
	gateRefused = "refused"   // the policy refused the change
	gateVote    = "rejected"  // the regions' quorum was not reached
	gateOpen    = "undecided" // still negotiating, or expired before the vote ended
)

// recordedGate is where the recorded decision stands.
func recordedGate(p *coordinatorv1.Proposal) string {
	switch p.GetStatus() {
	case coordinatorv1.ProposalStatus_PROPOSAL_STATUS_REJECTED:
		if p.GetVotes().GetOutcome() == quorum.OutcomeAgreed {
			return gateRefused // agreed, then refused by the policy at agreement
		}
		return gateVote
	case coordinatorv1.ProposalStatus_PROPOSAL_STATUS_DENIED:
		return gateDenied
	case coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL:
		return gatePending
	case coordinatorv1.ProposalStatus_PROPOSAL_STATUS_EXPIRED:
		if p.GetApprovalDeadline() != nil {
			return gatePending // the approvals did not come in time
		}
		return gateOpen
	case coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SUBMITTED, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_NEGOTIATING:
		return gateOpen
	}
	return gateThrough
}

// gate is where a candidate outcome stands.
func gate(outcome string) string {
	switch outcome {
	case OutcomeProceed, OutcomeApproved:
		return gateThrough
	case OutcomePending:
		return gatePending
	case OutcomeDenied:
		return gateDenied
	case OutcomeRefused:
		return gateRefused
	case OutcomeRejected:
		return gateVote
	case OutcomeError:
		return OutcomeError
	}
	return gateOpen
}

func describe(g string) string {
	switch g {
	case gateThrough:
		return "goes through"
	case gatePending:
		return "approval not met"
	case gateDenied:
		return "denied by an approver"
	case gateRefused:
		return "refused by policy"
	case gateVote:
		return "quorum not reached"
	case OutcomeError:
		return "not re-decided"
	}
	return "undecided"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
