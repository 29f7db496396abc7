package quorum_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/quorum"
)

// votePayloadSlow is the generic definition VotePayload must match byte for byte.
func votePayloadSlow(t testing.TB, digest string, round int32, region, verdict string) []byte {
	t.Helper()
	want, err := canonical.Marshal(map[string]any{"proposal_digest": digest, "round": round, "region": region, "verdict": verdict})
	require.NoError(t, err)
	return want
}

func TestVotePayloadMatchesCanonicalMarshal(t *testing.T) {
	for _, s := range []string{"", "eu-west", `a"b\c`, "<&>", "tab\there\nnl\r\b\f\x00\x1f\x7f", "é ü 日本", "\u2028\u2029",
		"😀", "\xff\xfe bad utf-8", strings.Repeat("x", 300)} {
		for _, round := range []int32{0, 1, -7, 2147483647, -2147483648} {
			got, err := quorum.VotePayload(s, round, s+"r", "v"+s)
			require.NoError(t, err)
			require.Equal(t, string(votePayloadSlow(t, s, round, s+"r", "v"+s)), string(got), "%q %d", s, round)
		}
	}
}

func FuzzVotePayload(f *testing.F) {
	f.Add(digest, int32(1), "eu-west", "ACCEPT")
	f.Add("\"\\", int32(-1), "\x00\xff", "\u2028")
	f.Fuzz(func(t *testing.T, d string, round int32, region, verdict string) {
		got, err := quorum.VotePayload(d, round, region, verdict)
		require.NoError(t, err)
		require.Equal(t, string(votePayloadSlow(t, d, round, region, verdict)), string(got))
	})
}

// Verify answers alike however often it is asked: after a successful check, every
// tampering is still refused.
func TestVerifyAgainAfterSuccess(t *testing.T) {
	rs := fiveRegions(t)
	c, trusted := build(t, quorum.RuleMajority, quorum.OutcomeAgreed, rs, []string{"ACCEPT", "ACCEPT", "ACCEPT", "REJECT", ""})
	require.NoError(t, quorum.Verify(c, trusted))
	require.NoError(t, quorum.Verify(c, trusted))

	flipped := c
	flipped.Votes = append([]quorum.Vote(nil), c.Votes...)
	flipped.Votes[3].Verdict = "ACCEPT"
	require.ErrorIs(t, quorum.Verify(flipped, trusted), quorum.ErrInvalid)

	swapped := c
	swapped.Votes = append([]quorum.Vote(nil), c.Votes...)
	swapped.Votes[1].Signature = c.Votes[0].Signature
	require.ErrorContains(t, quorum.Verify(swapped, trusted), `votes[1] (region "eu-central"): signature`)

	// Another registry key for a region: refused although its votes verified before.
	rotated := map[string][]byte{}
	for k, v := range trusted {
		rotated[k] = v
	}
	rotated["eu-west"] = []byte(newRegion(t, "eu-west", 3, 99).pem)
	require.ErrorContains(t, quorum.Verify(c, rotated), `region "eu-west": certificate key`)

	// Whitespace around a vote's base64 is allowed, as signing.Verify allows it.
	c2, trusted2 := build(t, quorum.RuleUnanimous, quorum.OutcomeAgreed, rs[:1], []string{"ACCEPT"})
	c2.Votes[0].Signature = " " + c2.Votes[0].Signature + "\n"
	require.NoError(t, quorum.Verify(c2, trusted2))
}

// Keys other than Ed25519 (ECDSA P-256, which signing.Verify supports) verify too.
func TestVerifyECDSARegion(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	require.NoError(t, err)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	id := canonical.SHA256Hex(der)
	payload, err := quorum.VotePayload(digest, 1, "eu-west", "ACCEPT")
	require.NoError(t, err)
	h := sha256.Sum256(payload)
	rr, ss, err := ecdsa.Sign(rand.Reader, key, h[:])
	require.NoError(t, err)
	sig, err := asn1.Marshal(struct{ R, S *big.Int }{rr, ss})
	require.NoError(t, err)
	c := quorum.Certificate{ProposalDigest: digest, NegotiationID: "01J0000000000000000000000A", Round: 1,
		Rule: quorum.RuleMajority, Outcome: quorum.OutcomeAgreed,
		Votes:      []quorum.Vote{{Region: "eu-west", Round: 1, Verdict: "ACCEPT", KeyID: id, Signature: base64.StdEncoding.EncodeToString(sig)}},
		RegionKeys: []quorum.RegionKey{{Region: "eu-west", KeyID: id, PublicKeyPEM: pemText, Weight: 1}}}
	trusted := map[string][]byte{"eu-west": []byte(pemText)}
	for range 2 {
		require.NoError(t, quorum.Verify(c, trusted))
	}
	c.Votes[0].Verdict = "REJECT"
	c.Outcome = quorum.OutcomeRejected
	require.ErrorContains(t, quorum.Verify(c, trusted), "signature")
}
