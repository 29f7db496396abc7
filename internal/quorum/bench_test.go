package quorum_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/quorum"
)

var benchPayload []byte

// BenchmarkVotePayload measures one vote payload; BenchmarkFloorVotePayloadCanonical is
// the generic canonical.Marshal of the same map, which it must never be slower than.
func BenchmarkVotePayload(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		p, err := quorum.VotePayload(digest, 2, "eu-west", quorum.VerdictAccept)
		if err != nil {
			b.Fatal(err)
		}
		benchPayload = p
	}
}

// BenchmarkFloorVotePayloadCanonical: the generic path VotePayload used to take.
func BenchmarkFloorVotePayloadCanonical(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		p, err := canonical.Marshal(map[string]any{"proposal_digest": digest, "round": int32(2),
			"region": "eu-west", "verdict": quorum.VerdictAccept})
		if err != nil {
			b.Fatal(err)
		}
		benchPayload = p
	}
}

// BenchmarkVerify verifies a five-region certificate, as the coordinator does
// before it signs a consensus bundle.
// It reports, measured in the same run, the floor of five bare ed25519.Verify
// calls over the same votes ("floor-ns/op") and its own ratio to it ("x-floor").
func BenchmarkVerify(b *testing.B) {
	rs := fiveRegions(b)
	c, trusted := build(b, quorum.RuleMajority, quorum.OutcomeAgreed, rs,
		[]string{"ACCEPT", "ACCEPT", "ACCEPT", "REJECT", "COUNTER"})
	floor := verifyFloor(b, c, rs)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := quorum.Verify(c, trusted); err != nil {
			b.Fatal(err)
		}
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(floor, "floor-ns/op")
	b.ReportMetric(perOp/floor, "x-floor")
}

// verifyFloor times five bare ed25519.Verify calls over c's votes (ns per five).
func verifyFloor(b *testing.B, c quorum.Certificate, rs []region) float64 {
	type signed struct {
		pub          ed25519.PublicKey
		payload, sig []byte
	}
	var votes []signed
	for i, v := range c.Votes {
		p, err := quorum.VotePayload(c.ProposalDigest, v.Round, v.Region, v.Verdict)
		if err != nil {
			b.Fatal(err)
		}
		sig, err := base64.StdEncoding.DecodeString(v.Signature)
		if err != nil {
			b.Fatal(err)
		}
		votes = append(votes, signed{rs[i].key.Public().(ed25519.PublicKey), p, sig})
	}
	const rounds = 200
	start := time.Now()
	for range rounds {
		for _, v := range votes {
			if !ed25519.Verify(v.pub, v.payload, v.sig) {
				b.Fatal("bad signature")
			}
		}
	}
	return float64(time.Since(start).Nanoseconds()) / rounds
}
