package negotiator_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

// Every negotiation that ends AGREED or REJECTED carries a certificate of its
// final round that verifies against the regions' published keys.
func TestQuorumCertificateVerifies(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		regions string
		rule    negotiatorv1.QuorumRule
		replica float64
		want    negotiatorv1.NegotiationState
		rule2   string
		round   int32
	}{
		"majority agrees":       {twoRefuse, 0, 4, agreed, "majority", 1},
		"unanimous rejects":     {twoRefuse, unanimous, 4, rejected, "unanimous", 1},
		"weighted agrees":       {twoRefuse, weighted, 4, agreed, "weighted", 1},
		"counters, round two":   {capacities, 0, 12, agreed, "majority", 2},
		"round limit rejects":   {"max_rounds: 1\n" + capacities, 0, 12, rejected, "majority", 1},
		"two thirds, round two": {capacities, negotiatorv1.QuorumRule_QUORUM_RULE_TWO_THIRDS, 12, agreed, "two_thirds", 2},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := &proposals{}
			h := newService(t, storeOpener(t, store.BackendSQLite)(), p, tc.regions)
			p.add("t1", "p1", scale(tc.replica))
			n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", QuorumRule: tc.rule})
			require.Nil(t, n.GetQuorumCertificate(), "no certificate while RUNNING")
			got := h.waitEnd(t, "t1", n.GetId())
			require.Equal(t, tc.want, got.GetState(), got.GetReason())
			require.Equal(t, tc.round, got.GetRound(), got.GetReason())

			pc := got.GetQuorumCertificate()
			require.NotNil(t, pc)
			c := quorum.FromProto(pc)
			require.Equal(t, got.GetId(), c.NegotiationID)
			require.Equal(t, got.GetProposalDigest(), c.ProposalDigest)
			require.Equal(t, got.GetRound(), c.Round)
			require.Equal(t, tc.rule2, c.Rule)
			require.Equal(t, tc.want.String(), "NEGOTIATION_STATE_"+c.Outcome)
			require.Len(t, c.RegionKeys, len(got.GetRegions()))
			for _, v := range c.Votes {
				require.Equal(t, got.GetRound(), v.Round)
			}
			require.NoError(t, quorum.Verify(c, h.svc.RegionKeys()))

			// The proto and the Go struct are the same certificate.
			require.True(t, bytes.Equal(mustCanonical(t, c), mustCanonical(t, quorum.FromProto(quorum.ToProto(&c)))))
		})
	}
}

func mustCanonical(t *testing.T, c quorum.Certificate) []byte {
	t.Helper()
	b, err := c.Canonical()
	require.NoError(t, err)
	return b
}

func TestExpiredHasNoCertificate(t *testing.T) {
	t.Parallel()
	p := &proposals{}
	h := newService(t, storeOpener(t, store.BackendSQLite)(), p, "regions:\n  - {name: eu-west, silent: true}\n")
	p.add("t1", "p1", scale(3))
	n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", DeadlineMs: 50})
	got := h.waitEnd(t, "t1", n.GetId())
	require.Equal(t, expired, got.GetState())
	require.Nil(t, got.GetQuorumCertificate())
}

// A real certificate, tampered with in each way a forger might try, fails
// verification with ErrInvalid naming the cause.
func TestQuorumCertificateTampering(t *testing.T) {
	t.Parallel()
	p := &proposals{}
	h := newService(t, storeOpener(t, store.BackendSQLite)(), p, twoRefuse)
	p.add("t1", "p1", scale(4))
	n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1"})
	got := h.waitEnd(t, "t1", n.GetId())
	require.Equal(t, agreed, got.GetState(), got.GetReason())
	base := quorum.FromProto(got.GetQuorumCertificate())
	registry := h.svc.RegionKeys()
	require.NoError(t, quorum.Verify(base, registry))
	require.GreaterOrEqual(t, len(base.Votes), 3)

	clone := func() quorum.Certificate {
		var c quorum.Certificate
		raw, err := json.Marshal(base)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &c))
		return c
	}
	cloneRegistry := func() map[string][]byte {
		out := map[string][]byte{}
		for k, v := range registry {
			out[k] = v
		}
		return out
	}
	sign := func(key ed25519.PrivateKey, c quorum.Certificate, v quorum.Vote) string {
		verdict := negotiatorv1.Verdict(negotiatorv1.Verdict_value["VERDICT_"+v.Verdict])
		sig, err := negotiator.SignVote(key, c.ProposalDigest, v.Round, v.Region, verdict)
		require.NoError(t, err)
		return sig
	}
	regionIndex := func(c quorum.Certificate, region string) int {
		for i, rk := range c.RegionKeys {
			if rk.Region == region {
				return i
			}
		}
		t.Fatalf("no region %s", region)
		return -1
	}
	first := base.Votes[0].Region
	attacker := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	attackerPub := attacker.Public().(ed25519.PublicKey)

	for name, tc := range map[string]struct {
		tamper  func(c *quorum.Certificate, trusted map[string][]byte)
		wantErr []string
	}{
		"forged signature": {func(c *quorum.Certificate, _ map[string][]byte) {
			c.Votes[0].Signature = c.Votes[1].Signature
		}, []string{first, "signature"}},
		"vote signed for another digest": {func(c *quorum.Certificate, _ map[string][]byte) {
			key, err := regionkeys.Derive(testSeed, first)
			require.NoError(t, err)
			other := *c
			other.ProposalDigest = "00" + c.ProposalDigest[2:]
			c.Votes[0].Signature = sign(key, other, c.Votes[0])
		}, []string{first, "signature"}},
		"missing region key in the registry": {func(_ *quorum.Certificate, trusted map[string][]byte) {
			delete(trusted, first)
		}, []string{first, "no trusted key"}},
		"swapped key in the certificate": {func(c *quorum.Certificate, _ map[string][]byte) {
			// The forger re-signs the vote with its own key and ships that key.
			i := regionIndex(*c, first)
			c.RegionKeys[i].PublicKeyPEM = regionkeys.PublicKeyPEM(attackerPub)
			c.RegionKeys[i].KeyID = regionkeys.KeyID(attackerPub)
			c.Votes[0].KeyID = regionkeys.KeyID(attackerPub)
			c.Votes[0].Signature = sign(attacker, *c, c.Votes[0])
		}, []string{first, "differs from the registry"}},
		"swapped key in the registry": {func(_ *quorum.Certificate, trusted map[string][]byte) {
			trusted[first] = []byte(regionkeys.PublicKeyPEM(attackerPub))
		}, []string{first, "differs from the registry"}},
		"vote from another round": {func(c *quorum.Certificate, _ map[string][]byte) {
			key, err := regionkeys.Derive(testSeed, first)
			require.NoError(t, err)
			c.Votes[0].Round = c.Round + 1
			c.Votes[0].Signature = sign(key, *c, c.Votes[0]) // validly signed, wrong round
		}, []string{first, "round 2"}},
		"duplicate vote": {func(c *quorum.Certificate, _ map[string][]byte) {
			c.Votes = append(c.Votes, c.Votes[0])
		}, []string{first, "duplicate vote"}},
		"outcome the votes do not support": {func(c *quorum.Certificate, _ map[string][]byte) {
			c.Outcome = quorum.OutcomeRejected
		}, []string{"outcome REJECTED is not supported", "majority quorum reached"}},
		"accepts dropped below the quorum": {func(c *quorum.Certificate, _ map[string][]byte) {
			var keep []quorum.Vote
			accepts := 0
			for _, v := range c.Votes {
				if v.Verdict == quorum.VerdictAccept {
					if accepts == 2 {
						continue
					}
					accepts++
				}
				keep = append(keep, v)
			}
			c.Votes = keep
		}, []string{"outcome AGREED is not supported"}},
		"stricter rule claimed": {func(c *quorum.Certificate, _ map[string][]byte) {
			c.Rule = quorum.RuleUnanimous
		}, []string{"outcome AGREED is not supported"}},
		"vote of an unlisted region": {func(c *quorum.Certificate, _ map[string][]byte) {
			c.RegionKeys = c.RegionKeys[:0:0]
			for _, rk := range base.RegionKeys {
				if rk.Region != first {
					c.RegionKeys = append(c.RegionKeys, rk)
				}
			}
		}, []string{first, "not in region_keys"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, trusted := clone(), cloneRegistry()
			tc.tamper(&c, trusted)
			err := quorum.Verify(c, trusted)
			require.Error(t, err)
			require.True(t, errors.Is(err, quorum.ErrInvalid), err.Error())
			for _, s := range tc.wantErr {
				require.Contains(t, err.Error(), s)
			}
		})
	}
}

// Service.RegionKeys publishes every configured region's vote key.
func TestServiceRegionKeys(t *testing.T) {
	t.Parallel()
	h := newService(t, storeOpener(t, store.BackendSQLite)(), &proposals{}, twoRefuse)
	keys := h.svc.RegionKeys()
	require.Len(t, keys, 5)
	for region, pemKey := range keys {
		key, err := regionkeys.Derive(testSeed, region)
		require.NoError(t, err)
		require.Equal(t, regionkeys.PublicKeyPEM(key.Public().(ed25519.PublicKey)), string(pemKey))
	}
}
