package quorum

import (
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"
)

// Envelope is everything a region signs about one vote besides the certificate
// payload (VotePayload): the negotiation, the request it answers (Nonce), the offer it
// evaluated, the reason, the counter-offer and the time. Regions running as their own
// processes sign it next to VotePayload with the same key (EnvelopePayload); the
// coordinating negotiator checks both against the key its registry holds for the
// region, which binds a vote to one request and refuses replays into another
// negotiation, round or request. The certificate keeps VotePayload only, so a
// certificate of federated votes verifies exactly as a simulated one (Verify).
type Envelope struct {
	Region         string `json:"region"`
	NegotiationID  string `json:"negotiation_id"`
	ProposalDigest string `json:"proposal_digest"`
	// OfferDigest is the hex SHA-256 of the canonical offer the region evaluated.
	OfferDigest string `json:"offer_digest"`
	Round       int32  `json:"round"`
	Verdict     string `json:"verdict"` // VerdictAccept ... VerdictAbstain
	Reason      string `json:"reason"`
	// CounterDigest is the hex SHA-256 of the canonical counter-offer ("" without one).
	CounterDigest string `json:"counter_digest"`
	// CastAt is when the region signed, UTC, RFC 3339 with nanoseconds.
	CastAt string `json:"cast_at"`
	Nonce  string `json:"nonce"`
	KeyID  string `json:"key_id"`
}

// EnvelopeType names the signed document, so an envelope signature can never be
// taken for another document's.
const EnvelopeType = "decision-fabric/region-vote/v1"

// EnvelopePayload is the RFC 8785 canonical JSON an envelope signature covers: the
// envelope's members plus "type": EnvelopeType.
func EnvelopePayload(e Envelope) ([]byte, error) {
	return canonical.Marshal(struct {
		Type string `json:"type"`
		Envelope
	}{EnvelopeType, e})
}

// FormatCastAt is the signed form of a vote's time.
func FormatCastAt(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
