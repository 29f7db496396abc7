package negotiator_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

var testSeed = bytes.Repeat([]byte{7}, regionkeys.SeedSize)

func manifest(impact string, params map[string]any) *typesv1.Manifest {
	s, err := structpb.NewStruct(params)
	if err != nil {
		panic(err)
	}
	return &typesv1.Manifest{Action: "scale", Target: "serviceX", Impact: impact, Parameters: s}
}

func region(t *testing.T, yaml string) negotiator.RegionConfig {
	t.Helper()
	c, err := negotiator.ParseRegions([]byte("regions:\n  - " + yaml))
	require.NoError(t, err)
	return c.Regions[0]
}

func agent(t *testing.T, cfg negotiator.RegionConfig) *negotiator.SimulatedAgent {
	t.Helper()
	key, err := regionkeys.Derive(testSeed, cfg.Name)
	require.NoError(t, err)
	return negotiator.NewSimulatedAgent(cfg, key, nil)
}

func TestSimulatedAgentDecide(t *testing.T) {
	t.Parallel()
	noon := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		region   string
		m        *typesv1.Manifest
		at       time.Time
		verdict  negotiatorv1.Verdict
		reason   string
		replicas float64 // of the counter
		cost     float64 // of the counter
	}{
		{"accepts what fits", `{name: r, capacity: 10}`, manifest("", map[string]any{"replicas": 10}), noon, accept, "within capacity", 0, 0},
		{"accepts without parameters", `{name: r, capacity: 10, cost_ceiling: 1}`, manifest("", nil), noon, accept, "", 0, 0},
		{"abstains", `{name: r, abstain: true}`, manifest("", nil), noon, abstain, "abstains", 0, 0},
		{"daily blackout", `{name: r, blackouts: [{start: "11:30", end: "12:30"}]}`, manifest("", nil), noon, reject, "blackout window 11:30-12:30 UTC", 0, 0},
		{"daily blackout wrapping midnight", `{name: r, blackouts: [{start: "22:00", end: "06:00"}]}`, manifest("", nil), noon.Add(-10 * time.Hour), reject, "blackout window 22:00-06:00 UTC", 0, 0},
		{"outside the blackout", `{name: r, blackouts: [{start: "22:00", end: "06:00"}]}`, manifest("", nil), noon, accept, "", 0, 0},
		{"end of a blackout is outside", `{name: r, blackouts: [{start: "10:00", end: "12:00"}]}`, manifest("", nil), noon, accept, "", 0, 0},
		{"absolute blackout", `{name: r, blackouts: [{start: "2025-06-01T00:00:00Z", end: "2025-06-02T00:00:00Z"}]}`, manifest("", nil), noon, reject, "blackout window 2025-06-01T00:00:00Z to 2025-06-02T00:00:00Z", 0, 0},
		{"spent error budget refuses medium impact", `{name: r, error_budget: 0.05}`, manifest("", nil), noon, reject, "error budget 5% left, below 10%: only low-impact changes (this one is medium)", 0, 0},
		{"spent error budget refuses high impact", `{name: r, error_budget: 0.05}`, manifest("high", nil), noon, reject, "this one is high", 0, 0},
		{"spent error budget lets low impact through", `{name: r, error_budget: 0.05}`, manifest("low", nil), noon, accept, "", 0, 0},
		{"error budget at the threshold is enough", `{name: r, error_budget: 0.1}`, manifest("high", nil), noon, accept, "", 0, 0},
		{"capacity counters", `{name: r, capacity: 8}`, manifest("", map[string]any{"replicas": 12}), noon, counter, "12 replicas exceed what the region allows (capacity is 8 replicas); counter-offer: 8", 8, 0},
		{"cost ceiling counters", `{name: r, capacity: 100, cost_ceiling: 6000, replica_cost: 240, currency: EUR}`, manifest("", map[string]any{"replicas": 30}), noon, counter, "cost ceiling 6000 EUR/month at 240 per replica allows 25", 25, 0},
		{"the tighter limit wins", `{name: r, capacity: 20, cost_ceiling: 6000, replica_cost: 240}`, manifest("", map[string]any{"replicas": 30}), noon, counter, "capacity is 20", 20, 0},
		{"monthly cost scales with replicas", `{name: r, cost_ceiling: 1000}`, manifest("", map[string]any{"replicas": 10, "monthly_cost": 2000}), noon, counter, "allows 5", 5, 1000},
		{"cost without replicas is refused", `{name: r, cost_ceiling: 1000, currency: USD}`, manifest("", map[string]any{"monthly_cost": 2000}), noon, reject, "monthly cost 2000 above the ceiling of 1000 USD", 0, 0},
		{"nothing fits", `{name: r, cost_ceiling: 100, replica_cost: 240}`, manifest("", map[string]any{"replicas": 3}), noon, reject, "no replicas fit", 0, 0},
		{"blackout before capacity", `{name: r, capacity: 1, blackouts: [{start: "00:00", end: "23:59"}]}`, manifest("", map[string]any{"replicas": 3}), noon, reject, "blackout", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := agent(t, region(t, tc.region))
			orig := proto.Clone(tc.m)
			verdict, reason, c := a.Decide(tc.m, tc.at)
			require.Equal(t, tc.verdict, verdict, reason)
			require.Contains(t, reason, tc.reason)
			require.True(t, proto.Equal(orig, tc.m), "the offer is not modified")
			if verdict != counter {
				require.Nil(t, c)
				return
			}
			require.Equal(t, tc.replicas, c.GetParameters().GetFields()["replicas"].GetNumberValue())
			if tc.cost > 0 {
				require.Equal(t, tc.cost, c.GetParameters().GetFields()["monthly_cost"].GetNumberValue())
			}
			require.Equal(t, tc.m.GetTarget(), c.GetTarget())
			// Deterministic: the same state, offer and time give the same answer.
			v2, r2, c2 := a.Decide(tc.m, tc.at)
			require.Equal(t, verdict, v2)
			require.Equal(t, reason, r2)
			require.True(t, proto.Equal(c, c2))
		})
	}
}

func TestSimulatedAgentSignsVotes(t *testing.T) {
	t.Parallel()
	a := agent(t, region(t, `{name: eu-west, capacity: 4}`))
	digest := "ab" + string(bytes.Repeat([]byte("0"), 62))
	v, err := a.Vote(t.Context(), negotiator.Offer{ProposalDigest: digest, Round: 2, Manifest: manifest("", map[string]any{"replicas": 6})})
	require.NoError(t, err)
	require.Equal(t, "eu-west", v.Region)
	require.Equal(t, int32(2), v.Round)
	require.Equal(t, counter, v.Verdict)
	require.Equal(t, regionkeys.KeyID(a.PublicKey()), v.KeyID)
	require.NoError(t, negotiator.VerifyVote(a.PublicKey(), digest, 2, "eu-west", counter, v.Signature))

	// The signature binds digest, round, region and verdict.
	require.ErrorIs(t, negotiator.VerifyVote(a.PublicKey(), digest, 3, "eu-west", counter, v.Signature), negotiator.ErrBadSignature)
	require.ErrorIs(t, negotiator.VerifyVote(a.PublicKey(), digest, 2, "us-east", counter, v.Signature), negotiator.ErrBadSignature)
	require.ErrorIs(t, negotiator.VerifyVote(a.PublicKey(), digest, 2, "eu-west", accept, v.Signature), negotiator.ErrBadSignature)
	require.ErrorIs(t, negotiator.VerifyVote(a.PublicKey(), "cd"+digest[2:], 2, "eu-west", counter, v.Signature), negotiator.ErrBadSignature)
	require.ErrorIs(t, negotiator.VerifyVote(a.PublicKey(), digest, 2, "eu-west", counter, "!!"), negotiator.ErrBadSignature)

	payload, err := negotiator.VotePayload(digest, 2, "eu-west", counter)
	require.NoError(t, err)
	require.Equal(t, `{"proposal_digest":"`+digest+`","region":"eu-west","round":2,"verdict":"COUNTER"}`, string(payload))
}

func TestSimulatedAgentLatencyAndSilence(t *testing.T) {
	t.Parallel()
	silent := agent(t, region(t, `{name: r, silent: true}`))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := silent.Vote(ctx, negotiator.Offer{Manifest: manifest("", nil)})
	require.ErrorIs(t, err, context.DeadlineExceeded, "a silent region answers only when the context ends")

	slow := agent(t, region(t, `{name: r, latency: 1m}`))
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	_, err = slow.Vote(ctx, negotiator.Offer{Manifest: manifest("", nil)})
	require.ErrorIs(t, err, context.Canceled, "latency respects the context")
}
