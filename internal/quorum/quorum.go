// Package quorum holds the quorum certificate of a federated negotiation: the
// signed votes of its final round, the regions' keys and the rule that turns
// the votes into the outcome, and Verify, which re-checks all of it offline
// against a registry of trusted region keys.
//
// It also holds the two pieces the negotiator and a verifier must agree on
// byte for byte: VotePayload (what a vote's signature covers) and Met (the
// quorum rules). The negotiator calls both, so there is one definition.
package quorum

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/signing"
)

// ErrInvalid: the certificate does not prove its outcome. Every error from
// Verify wraps it and names the first offending field, region or vote.
var ErrInvalid = errors.New("quorum: invalid certificate")

// Rule names (the lower-case form of negotiator.v1.QuorumRule).
const (
	RuleMajority  = "majority"
	RuleTwoThirds = "two_thirds"
	RuleUnanimous = "unanimous"
	RuleWeighted  = "weighted"
)

// Outcomes a certificate can prove.
const (
	OutcomeAgreed   = "AGREED"
	OutcomeRejected = "REJECTED"
)

// Verdicts as signed (negotiator.v1.Verdict without its VERDICT_ prefix).
const (
	VerdictAccept  = "ACCEPT"
	VerdictReject  = "REJECT"
	VerdictCounter = "COUNTER"
	VerdictAbstain = "ABSTAIN"
)

// Vote is one region's signed verdict.
type Vote struct {
	Region    string `json:"region"`
	Round     int32  `json:"round"`
	Verdict   string `json:"verdict"`
	Signature string `json:"signature"` // base64 (standard, padded) Ed25519 over VotePayload
	KeyID     string `json:"key_id"`
}

// RegionKey is one expected region: its key and weight.
type RegionKey struct {
	Region       string `json:"region"`
	KeyID        string `json:"key_id"`
	PublicKeyPEM string `json:"public_key_pem"`
	Weight       int64  `json:"weight"`
}

// Certificate proves a negotiation's outcome.
type Certificate struct {
	// ProposalDigest is the lower-case hex SHA256 of the proposal's canonical
	// manifest, the digest every vote signs.
	ProposalDigest string      `json:"proposal_digest"`
	NegotiationID  string      `json:"negotiation_id"`
	Round          int32       `json:"round"`
	Rule           string      `json:"rule"`    // RuleMajority, RuleTwoThirds, RuleUnanimous or RuleWeighted
	Outcome        string      `json:"outcome"` // OutcomeAgreed or OutcomeRejected
	Votes          []Vote      `json:"votes"`
	RegionKeys     []RegionKey `json:"region_keys"`
}

// Canonical returns the RFC 8785 canonical JSON of c (the form to hash or sign).
func (c Certificate) Canonical() ([]byte, error) {
	if c.Votes == nil {
		c.Votes = []Vote{}
	}
	if c.RegionKeys == nil {
		c.RegionKeys = []RegionKey{}
	}
	return canonical.Marshal(c)
}

// VotePayload is the canonical JSON a vote's signature covers:
//
//	{"proposal_digest":"<hex>","region":"<name>","round":<n>,"verdict":"ACCEPT"}
//
// It writes the bytes directly (the keys in RFC 8785 order, each string with
// canonical.AppendString), which is what canonical.Marshal of that object
// gives; the error is always nil.
func VotePayload(proposalDigest string, round int32, region, verdict string) ([]byte, error) {
	b := make([]byte, 0, len(`{"proposal_digest":"","region":"","round":-2147483648,"verdict":""}`)+
		len(proposalDigest)+len(region)+len(verdict))
	b = append(b, `{"proposal_digest":`...)
	b = canonical.AppendString(b, proposalDigest)
	b = append(b, `,"region":`...)
	b = canonical.AppendString(b, region)
	b = append(b, `,"round":`...)
	b = strconv.AppendInt(b, int64(round), 10)
	b = append(b, `,"verdict":`...)
	b = canonical.AppendString(b, verdict)
	return append(b, '}'), nil
}

// Met reports whether yes accepting regions (of weight yesW) satisfy rule when
// d regions (of weight dW) take a position (abstentions are out of d and dW;
// regions that have not answered are in). Every rule needs one accept. An
// unknown rule name is majority (validate names before calling).
//
//	majority:   2·yes > d
//	two_thirds: 3·yes ≥ 2·d
//	unanimous:  yes = d
//	weighted:   2·yesW > dW
func Met(rule string, yes int, yesW int64, d int, dW int64) bool {
	if yes < 1 {
		return false
	}
	switch rule {
	case RuleTwoThirds:
		return 3*yes >= 2*d
	case RuleUnanimous:
		return yes == d
	case RuleWeighted:
		return 2*yesW > dW
	default:
		return 2*yes > d
	}
}

// Limits that keep the weighted arithmetic exact whatever a certificate says.
const (
	maxWeight  = 1 << 32
	maxRegions = 1 << 16
)

var reDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}

// Verify checks that c proves its outcome, with trusted (region -> PEM
// "PUBLIC KEY", the registry the regions publish) as the only source of keys:
//
//   - every region in region_keys has a trusted key, and the certificate's key
//     (PEM and key_id) is that key;
//   - every vote is from a listed region, from the certificate's round, at
//     most one per region, with a known verdict, signed by the region's
//     trusted key over exactly VotePayload;
//   - recounting the votes with the rule gives the outcome: AGREED when the
//     ACCEPTs reach the quorum (regions without a vote stay in the
//     denominator, ABSTAINs leave it); REJECTED when every region abstained
//     or the ACCEPTs could not reach the quorum even if every region without
//     a vote accepted. A COUNTER is not an ACCEPT, so a final round of
//     counters that max_rounds cut off is REJECTED, as the negotiator says.
//
// Errors wrap ErrInvalid and name the first offending region or vote.
func Verify(c Certificate, trusted map[string][]byte) error {
	if !reDigest.MatchString(c.ProposalDigest) {
		return invalid("proposal_digest %q: want 64 lower-case hex digits", c.ProposalDigest)
	}
	if c.Round < 1 {
		return invalid("round %d: want at least 1", c.Round)
	}
	switch c.Rule {
	case RuleMajority, RuleTwoThirds, RuleUnanimous, RuleWeighted:
	default:
		return invalid("rule %q: want majority, two_thirds, unanimous or weighted", c.Rule)
	}
	if c.Outcome != OutcomeAgreed && c.Outcome != OutcomeRejected {
		return invalid("outcome %q: want AGREED or REJECTED", c.Outcome)
	}
	if len(c.RegionKeys) == 0 {
		return invalid("region_keys: empty")
	}
	if len(c.RegionKeys) > maxRegions {
		return invalid("region_keys: %d regions, at most %d", len(c.RegionKeys), maxRegions)
	}

	keys := make(map[string]RegionKey, len(c.RegionKeys))
	for i, rk := range c.RegionKeys {
		if rk.Region == "" {
			return invalid("region_keys[%d]: region is empty", i)
		}
		if _, dup := keys[rk.Region]; dup {
			return invalid("region %q: listed twice in region_keys", rk.Region)
		}
		if rk.Weight < 1 || rk.Weight > maxWeight {
			return invalid("region %q: weight %d: want 1-%d", rk.Region, rk.Weight, int64(maxWeight))
		}
		want, ok := trusted[rk.Region]
		if !ok || len(want) == 0 {
			return invalid("region %q: no trusted key in the registry", rk.Region)
		}
		wantID, err := signing.KeyIDFromPEM(want)
		if err != nil {
			return invalid("region %q: registry key: %v", rk.Region, err)
		}
		gotID, err := signing.KeyIDFromPEM([]byte(rk.PublicKeyPEM))
		if err != nil {
			return invalid("region %q: public_key_pem: %v", rk.Region, err)
		}
		if gotID != wantID {
			return invalid("region %q: certificate key %s differs from the registry's key %s", rk.Region, gotID, wantID)
		}
		if rk.KeyID != wantID {
			return invalid("region %q: key_id %q does not match its key %s", rk.Region, rk.KeyID, wantID)
		}
		keys[rk.Region] = rk
	}

	voted := make(map[string]string, len(c.Votes))
	for i, v := range c.Votes {
		rk, ok := keys[v.Region]
		if !ok {
			return invalid("votes[%d] (region %q): region not in region_keys", i, v.Region)
		}
		if _, dup := voted[v.Region]; dup {
			return invalid("votes[%d] (region %q): duplicate vote", i, v.Region)
		}
		if v.Round != c.Round {
			return invalid("votes[%d] (region %q): round %d, the certificate is for round %d", i, v.Region, v.Round, c.Round)
		}
		switch v.Verdict {
		case VerdictAccept, VerdictReject, VerdictCounter, VerdictAbstain:
		default:
			return invalid("votes[%d] (region %q): verdict %q: want ACCEPT, REJECT, COUNTER or ABSTAIN", i, v.Region, v.Verdict)
		}
		if v.KeyID != rk.KeyID {
			return invalid("votes[%d] (region %q): key_id %q is not the region's key %s", i, v.Region, v.KeyID, rk.KeyID)
		}
		payload, err := VotePayload(c.ProposalDigest, v.Round, v.Region, v.Verdict)
		if err != nil {
			return invalid("votes[%d] (region %q): payload: %v", i, v.Region, err)
		}
		if err := signing.Verify(trusted[v.Region], payload, v.Signature); err != nil {
			return invalid("votes[%d] (region %q): signature: %v", i, v.Region, err)
		}
		voted[v.Region] = v.Verdict
	}

	got, why := Recount(c.Rule, c.RegionKeys, voted)
	if got != c.Outcome {
		return invalid("outcome %s is not supported by the votes: %s", c.Outcome, why)
	}
	return nil
}

// Recount decides the outcome a final round's verdicts (region -> verdict)
// support under rule, and says why: OutcomeAgreed, OutcomeRejected, or ""
// when neither (missing votes could still reach the quorum).
func Recount(rule string, regions []RegionKey, verdicts map[string]string) (string, string) {
	var n, accept, abstain, pending int
	var total, acceptW, abstainW, pendingW int64
	for _, r := range regions {
		n++
		total += r.Weight
		v, ok := verdicts[r.Region]
		switch {
		case !ok:
			pending++
			pendingW += r.Weight
		case v == VerdictAccept:
			accept++
			acceptW += r.Weight
		case v == VerdictAbstain:
			abstain++
			abstainW += r.Weight
		}
	}
	d, dW := n-abstain, total-abstainW
	counted := fmt.Sprintf("%d of %d voting regions accepted (weight %d of %d), %d did not vote", accept, d, acceptW, dW, pending)
	switch {
	case d == 0:
		return OutcomeRejected, "every region abstained"
	case Met(rule, accept, acceptW, d, dW):
		return OutcomeAgreed, rule + " quorum reached: " + counted
	case !Met(rule, accept+pending, acceptW+pendingW, d, dW):
		return OutcomeRejected, rule + " quorum not reached: " + counted
	default:
		return "", rule + " quorum still possible: " + counted
	}
}

// ToProto renders a certificate for the API (negotiator.v1.QuorumCertificate).
func ToProto(c *Certificate) *negotiatorv1.QuorumCertificate {
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

// FromProto is the inverse of ToProto, for a client that verifies a
// certificate it received with Verify. A nil p gives the zero Certificate
// (which Verify refuses).
func FromProto(p *negotiatorv1.QuorumCertificate) Certificate {
	c := Certificate{
		ProposalDigest: p.GetProposalDigest(),
		NegotiationID:  p.GetNegotiationId(),
		Round:          p.GetRound(),
		Rule:           p.GetRule(),
		Outcome:        p.GetOutcome(),
		Votes:          make([]Vote, 0, len(p.GetVotes())),
		RegionKeys:     make([]RegionKey, 0, len(p.GetRegionKeys())),
	}
	for _, v := range p.GetVotes() {
		c.Votes = append(c.Votes, Vote{Region: v.GetRegion(), Round: v.GetRound(), Verdict: v.GetVerdict(),
			Signature: v.GetSignature(), KeyID: v.GetKeyId()})
	}
	for _, r := range p.GetRegionKeys() {
		c.RegionKeys = append(c.RegionKeys, RegionKey{Region: r.GetRegion(), KeyID: r.GetKeyId(),
			PublicKeyPEM: r.GetPublicKeyPem(), Weight: r.GetWeight()})
	}
	return c
}
