package negotiator

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	qc "github.com/decision-fabric/fabric/internal/quorum"
)

// Vote signing. Every vote is an Ed25519 signature by its region's key over
// the RFC 8785 canonical JSON of
//
//	{"proposal_digest":"<hex>","region":"<name>","round":<n>,"verdict":"ACCEPT"}
//
// (verdict without its VERDICT_ prefix). Simulated regions derive their keys
// from one seed (internal/regionkeys, the one home of the region keys and of
// the registry that trusts them), so a restarted fabric signs with the same
// keys; each negotiation also stores the public keys it was signed with, so a
// verifier can check its votes later without the seed.

// VotePayload is the canonical JSON a vote's signature covers (internal/quorum.VotePayload,
// the one definition a certificate verifier also uses).
func VotePayload(proposalDigest string, round int32, region string, verdict negotiatorv1.Verdict) ([]byte, error) {
	return qc.VotePayload(proposalDigest, round, region, verdictName(verdict))
}

// SignVote signs a vote's payload and returns the base64 signature.
func SignVote(key ed25519.PrivateKey, proposalDigest string, round int32, region string, verdict negotiatorv1.Verdict) (string, error) {
	payload, err := VotePayload(proposalDigest, round, region, verdict)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, payload)), nil
}

// ErrBadSignature: a vote's signature does not verify with its region's key.
var ErrBadSignature = errors.New("negotiator: vote signature does not verify")

// VerifyVote checks a vote's signature with the region's public key.
func VerifyVote(pub ed25519.PublicKey, proposalDigest string, round int32, region string, verdict negotiatorv1.Verdict, signature string) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64", ErrBadSignature)
	}
	payload, err := VotePayload(proposalDigest, round, region, verdict)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, payload, sig) {
		return ErrBadSignature
	}
	return nil
}

// verdictName is the stored and signed form of a verdict ("ACCEPT").
func verdictName(v negotiatorv1.Verdict) string {
	return strings.TrimPrefix(v.String(), "VERDICT_")
}

// parseVerdict parses the stored form; unknown names are VERDICT_UNSPECIFIED.
func parseVerdict(s string) negotiatorv1.Verdict {
	return negotiatorv1.Verdict(negotiatorv1.Verdict_value["VERDICT_"+s])
}
