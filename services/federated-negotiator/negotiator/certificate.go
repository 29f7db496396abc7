package negotiator

import (
	qc "github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/store"
)

// RegionKeys is the region key registry the negotiator checked its regions
// against (Deps.RegionKeys, or its agents' own keys): region -> PEM "PUBLIC
// KEY" of the key that signs its votes, for every configured region. It is
// what a verifier passes to quorum.Verify as the trusted keys.
func (s *Service) RegionKeys() map[string][]byte {
	return s.registry.Trusted()
}

// certificate builds the quorum certificate of an ended negotiation from the
// stored votes of its final round and the regions' stored keys. It returns nil
// unless n ended AGREED or REJECTED and the final round's votes support that
// outcome (a negotiation ended by an internal error, not by its votes, has no
// certificate). Signatures are not re-checked here: they were when recorded.
func certificate(n *store.Negotiation, votes []*store.NegotiationVote) *qc.Certificate {
	var outcome string
	switch n.State {
	case store.NegotiationAgreed:
		outcome = qc.OutcomeAgreed
	case store.NegotiationRejected:
		outcome = qc.OutcomeRejected
	default:
		return nil
	}
	c := &qc.Certificate{
		ProposalDigest: n.ProposalDigest,
		NegotiationID:  n.ID,
		Round:          n.Round,
		Rule:           qc.RuleName(qc.RuleFromStored(n.QuorumRule)),
		Outcome:        outcome,
		Votes:          []qc.Vote{},
		RegionKeys:     make([]qc.RegionKey, 0, len(n.Regions)),
	}
	for _, r := range n.Regions {
		c.RegionKeys = append(c.RegionKeys, qc.RegionKey{Region: r.Region, KeyID: r.KeyID, PublicKeyPEM: r.PublicKey, Weight: r.Weight})
	}
	verdicts := map[string]string{}
	for _, v := range votes {
		if v.Round != n.Round {
			continue
		}
		if _, seen := verdicts[v.Region]; seen { // only a region's first vote counts
			continue
		}
		verdicts[v.Region] = v.Verdict
		c.Votes = append(c.Votes, qc.Vote{Region: v.Region, Round: v.Round, Verdict: v.Verdict, Signature: v.Signature, KeyID: v.KeyID})
	}
	if got, _ := qc.Recount(c.Rule, c.RegionKeys, verdicts); got != outcome {
		return nil
	}
	return c
}
