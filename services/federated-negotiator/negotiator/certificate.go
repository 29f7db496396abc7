package negotiator

import (
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	qc "github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/store"
)

// RegionKeys is the registry the simulated regions publish: region -> PEM
// "PUBLIC KEY" of the key that signs its votes, for every configured region.
// It is what a verifier passes to quorum.Verify as the trusted keys.
func (s *Service) RegionKeys() map[string][]byte {
	out := make(map[string][]byte, len(s.agents))
	for name, a := range s.agents {
		out[name] = []byte(PublicKeyPEM(a.PublicKey()))
	}
	return out
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
		Rule:           RuleName(ruleFromString(n.QuorumRule)),
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

// CertificateToProto renders a certificate for the API.
func CertificateToProto(c *qc.Certificate) *negotiatorv1.QuorumCertificate {
	if c == nil {
		return nil
	}
	out := &negotiatorv1.QuorumCertificate{
		ProposalDigest: c.ProposalDigest,
		NegotiationId:  c.NegotiationID,
		Round:          c.Round,
		Rule:           c.Rule,
		Outcome:        c.Outcome,
	}
	for _, v := range c.Votes {
		out.Votes = append(out.Votes, &negotiatorv1.QuorumCertificateVote{Region: v.Region, Round: v.Round, Verdict: v.Verdict,
			Signature: v.Signature, KeyId: v.KeyID})
	}
	for _, r := range c.RegionKeys {
		out.RegionKeys = append(out.RegionKeys, &negotiatorv1.QuorumCertificateRegionKey{Region: r.Region, KeyId: r.KeyID,
			PublicKeyPem: r.PublicKeyPEM, Weight: r.Weight})
	}
	return out
}

// CertificateFromProto is the inverse of CertificateToProto, for a client
// that verifies a certificate it received with quorum.Verify.
func CertificateFromProto(p *negotiatorv1.QuorumCertificate) qc.Certificate {
	c := qc.Certificate{
		ProposalDigest: p.GetProposalDigest(),
		NegotiationID:  p.GetNegotiationId(),
		Round:          p.GetRound(),
		Rule:           p.GetRule(),
		Outcome:        p.GetOutcome(),
		Votes:          make([]qc.Vote, 0, len(p.GetVotes())),
		RegionKeys:     make([]qc.RegionKey, 0, len(p.GetRegionKeys())),
	}
	for _, v := range p.GetVotes() {
		c.Votes = append(c.Votes, qc.Vote{Region: v.GetRegion(), Round: v.GetRound(), Verdict: v.GetVerdict(),
			Signature: v.GetSignature(), KeyID: v.GetKeyId()})
	}
	for _, r := range p.GetRegionKeys() {
		c.RegionKeys = append(c.RegionKeys, qc.RegionKey{Region: r.GetRegion(), KeyID: r.GetKeyId(),
			PublicKeyPEM: r.GetPublicKeyPem(), Weight: r.GetWeight()})
	}
	return c
}
