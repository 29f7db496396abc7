package negotiator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

// BenchmarkVoteLifecycle is what the decision path does with one proposal's five
// votes: each region signs its vote and the negotiator checks it (VerifyVote),
// then the coordinator verifies the quorum certificate twice (building the
// consensus bundle, and again for a bundle it has not verified). Every iteration negotiates a
// new digest, so nothing is verified before its vote is accepted. It reports,
// measured in the same run, the floor of signing and verifying each vote once
// with bare ed25519 ("floor-ns/op") and its ratio to it ("x-floor").
func BenchmarkVoteLifecycle(b *testing.B) {
	cfg, err := negotiator.ParseRegions([]byte(`regions:
  - {name: eu-west}
  - {name: eu-central}
  - {name: us-east}
  - {name: us-west}
  - {name: ap-south}
`))
	if err != nil {
		b.Fatal(err)
	}
	var agents []*negotiator.SimulatedAgent
	trusted := map[string][]byte{}
	var keys []quorum.RegionKey
	for _, r := range cfg.Regions {
		key, err := regionkeys.Derive(testSeed, r.Name)
		if err != nil {
			b.Fatal(err)
		}
		a := negotiator.NewSimulatedAgent(r, key, nil)
		agents = append(agents, a)
		pemText := regionkeys.PublicKeyPEM(a.PublicKey())
		trusted[r.Name] = []byte(pemText)
		keys = append(keys, quorum.RegionKey{Region: r.Name, KeyID: regionkeys.KeyID(a.PublicKey()), PublicKeyPEM: pemText, Weight: 1})
	}
	m := manifest("low", map[string]any{"replicas": 3})
	digestOf := func(i uint64) string {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], i)
		sum := sha256.Sum256(n[:])
		return hex.EncodeToString(sum[:])
	}
	floor := lifecycleFloor(b, agents, digestOf)

	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var i uint64
	for b.Loop() {
		i++
		o := negotiator.Offer{NegotiationID: "n", TenantID: "t", ProposalID: "p", ProposalDigest: digestOf(i), Round: 1, Manifest: m}
		c := quorum.Certificate{ProposalDigest: o.ProposalDigest, NegotiationID: "n", Round: 1, Rule: quorum.RuleMajority,
			Outcome: quorum.OutcomeAgreed, RegionKeys: keys}
		for _, a := range agents {
			v, err := a.Vote(ctx, o)
			if err != nil {
				b.Fatal(err)
			}
			if err := negotiator.VerifyVote(a.PublicKey(), o.ProposalDigest, o.Round, a.Region(), v.Verdict, v.Signature); err != nil {
				b.Fatal(err)
			}
			c.Votes = append(c.Votes, quorum.Vote{Region: v.Region, Round: v.Round, Verdict: quorum.VerdictAccept,
				Signature: v.Signature, KeyID: v.KeyID})
		}
		for range 2 {
			if err := quorum.Verify(c, trusted); err != nil {
				b.Fatal(err)
			}
		}
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(floor, "floor-ns/op")
	b.ReportMetric(perOp/floor, "x-floor")
}

// lifecycleFloor times signing and verifying five votes once each with bare
// ed25519 (ns per five).
func lifecycleFloor(b *testing.B, agents []*negotiator.SimulatedAgent, digestOf func(uint64) string) float64 {
	var privs []ed25519.PrivateKey
	for _, a := range agents {
		key, err := regionkeys.Derive(testSeed, a.Region())
		if err != nil {
			b.Fatal(err)
		}
		privs = append(privs, key)
	}
	const rounds = 100
	start := time.Now()
	for i := range uint64(rounds) {
		payload := []byte(`{"proposal_digest":"` + digestOf(i) + `","region":"eu-west","round":1,"verdict":"ACCEPT"}`)
		for _, k := range privs {
			sig := base64.StdEncoding.EncodeToString(ed25519.Sign(k, payload))
			raw, _ := base64.StdEncoding.DecodeString(sig)
			if !ed25519.Verify(k.Public().(ed25519.PublicKey), payload, raw) {
				b.Fatal("bad signature")
			}
		}
	}
	return float64(time.Since(start).Nanoseconds()) / rounds
}
