package negotiator

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/regionkeys"
)

// Offer is what a region is asked to vote on in one round.
type Offer struct {
	NegotiationID string
	TenantID      string
	ProposalID    string
	// ProposalDigest is the hex SHA256 of the proposal's canonical manifest; the
	// vote signature covers it.
	ProposalDigest string
	Round          int32
	// Manifest is the round's offer. Agents must not modify it.
	Manifest *typesv1.Manifest
	// Deadline is the negotiation's deadline (regions that run as processes abstain
	// when they cannot decide before it).
	Deadline time.Time
}

// Vote is one region's signed answer in one round.
type Vote struct {
	Region  string
	Round   int32
	Verdict negotiatorv1.Verdict
	Reason  string
	// Counter is the modified manifest of a COUNTER (nil otherwise).
	Counter *typesv1.Manifest
	// Signature is the base64 Ed25519 signature over VotePayload.
	Signature string
	KeyID     string
}

// Agent is one region's negotiating agent: in simulation an in-process
// SimulatedAgent, in federation a client of that region's negotiator.
type Agent interface {
	// Region is the region the agent speaks for.
	Region() string
	// PublicKey verifies the agent's vote signatures.
	PublicKey() ed25519.PublicKey
	// Vote answers offer. It MUST return when ctx ends (with ctx's error), and
	// MUST NOT modify offer.Manifest. An error other than ctx's is retried.
	Vote(ctx context.Context, offer Offer) (Vote, error)
}

// SimulatedAgent is an in-process regional agent that decides from its
// RegionConfig, deterministically: the same state, offer and clock always
// give the same vote.
type SimulatedAgent struct {
	cfg   RegionConfig
	key   ed25519.PrivateKey
	pub   ed25519.PublicKey
	keyID string // regionkeys.KeyID(pub), stamped on every vote
	now   func() time.Time
}

// NewSimulatedAgent returns an agent for cfg signing with key; now is the
// clock the blackout windows are checked against (time.Now when nil).
func NewSimulatedAgent(cfg RegionConfig, key ed25519.PrivateKey, now func() time.Time) *SimulatedAgent {
	if now == nil {
		now = time.Now
	}
	pub := key.Public().(ed25519.PublicKey)
	return &SimulatedAgent{cfg: cfg, key: key, pub: pub, keyID: regionkeys.KeyID(pub), now: now}
}

// Region implements Agent.
func (a *SimulatedAgent) Region() string { return a.cfg.Name }

// PublicKey implements Agent.
func (a *SimulatedAgent) PublicKey() ed25519.PublicKey { return a.pub }

// Vote implements Agent: it waits the region's latency (forever when Silent),
// decides and signs.
func (a *SimulatedAgent) Vote(ctx context.Context, offer Offer) (Vote, error) {
	if a.cfg.Silent {
		<-ctx.Done()
		return Vote{}, ctx.Err()
	}
	if a.cfg.Latency > 0 {
		t := time.NewTimer(a.cfg.Latency)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return Vote{}, ctx.Err()
		case <-t.C:
		}
	}
	verdict, reason, counter := a.Decide(offer.Manifest, a.now())
	sig, err := SignVote(a.key, offer.ProposalDigest, offer.Round, a.cfg.Name, verdict)
	if err != nil {
		return Vote{}, err
	}
	return Vote{Region: a.cfg.Name, Round: offer.Round, Verdict: verdict, Reason: reason, Counter: counter,
		Signature: sig, KeyID: a.keyID}, nil
}

// Errors budgets below this fraction accept only low-impact changes.
const minErrorBudget = 0.1

// Decide is the region's decision on m at time now, first matching rule wins:
//
//  1. Abstain set: ABSTAIN.
//  2. now in a blackout window: REJECT.
//  3. error budget below 0.1 and impact not "low" ("" counts as medium, the
//     coordinator's default): REJECT.
//  4. parameters.replicas above what the region allows: COUNTER with the
//     allowed number (capacity, and cost_ceiling divided by the cost of one
//     replica: replica_cost, or parameters.monthly_cost / replicas), with
//     monthly_cost scaled down alike; REJECT when it allows none.
//  5. parameters.monthly_cost above cost_ceiling without replicas to scale: REJECT.
//  6. Otherwise ACCEPT.
func (a *SimulatedAgent) Decide(m *typesv1.Manifest, now time.Time) (negotiatorv1.Verdict, string, *typesv1.Manifest) {
	c := a.cfg
	if c.Abstain {
		return negotiatorv1.Verdict_VERDICT_ABSTAIN, "region abstains: it observes and does not vote", nil
	}
	for _, b := range c.Blackouts {
		if b.Contains(now) {
			return negotiatorv1.Verdict_VERDICT_REJECT, "blackout window " + b.String(), nil
		}
	}
	if c.ErrorBudget < minErrorBudget && m.GetImpact() != "low" {
		impact := m.GetImpact()
		if impact == "" {
			impact = "medium"
		}
		return negotiatorv1.Verdict_VERDICT_REJECT, fmt.Sprintf(
			"error budget %s%% left, below %s%%: only low-impact changes (this one is %s)",
			formatNumber(math.Round(c.ErrorBudget*1000)/10), formatNumber(minErrorBudget*100), impact), nil
	}

	replicas, hasReplicas := numberParam(m, "replicas")
	cost, hasCost := numberParam(m, "monthly_cost")
	limit, why := math.Inf(1), ""
	if c.Capacity > 0 {
		limit, why = float64(c.Capacity), fmt.Sprintf("capacity is %d replicas", c.Capacity)
	}
	perReplica := c.ReplicaCost
	if perReplica == 0 && hasCost && hasReplicas && replicas > 0 {
		perReplica = cost / replicas
	}
	if c.CostCeiling > 0 && perReplica > 0 {
		if byCost := math.Floor(c.CostCeiling/perReplica + 1e-9); byCost < limit {
			limit, why = byCost, fmt.Sprintf("cost ceiling %s/month at %s per replica allows %s",
				money(c.CostCeiling, c.Currency), formatNumber(perReplica), formatNumber(byCost))
		}
	}
	if hasReplicas && replicas > limit {
		if limit < 1 {
			return negotiatorv1.Verdict_VERDICT_REJECT, why + ": no replicas fit", nil
		}
		counter := proto.Clone(m).(*typesv1.Manifest)
		counter.Parameters.Fields["replicas"] = structpb.NewNumberValue(limit)
		if hasCost && replicas > 0 {
			counter.Parameters.Fields["monthly_cost"] = structpb.NewNumberValue(math.Round(cost*limit/replicas*100) / 100)
		}
		return negotiatorv1.Verdict_VERDICT_COUNTER, fmt.Sprintf("%s replicas exceed what the region allows (%s); counter-offer: %s",
			formatNumber(replicas), why, formatNumber(limit)), counter
	}
	if hasCost && !hasReplicas && c.CostCeiling > 0 && cost > c.CostCeiling {
		return negotiatorv1.Verdict_VERDICT_REJECT, fmt.Sprintf("monthly cost %s above the ceiling of %s",
			formatNumber(cost), money(c.CostCeiling, c.Currency)), nil
	}
	return negotiatorv1.Verdict_VERDICT_ACCEPT, "within capacity, error budget and cost ceiling", nil
}

// money renders an amount with its currency, when there is one ("6000 EUR").
func money(v float64, currency string) string {
	if currency == "" {
		return formatNumber(v)
	}
	return formatNumber(v) + " " + currency
}

// numberParam reads a finite, non-negative number from m.parameters.
func numberParam(m *typesv1.Manifest, key string) (float64, bool) {
	v, ok := m.GetParameters().GetFields()[key].GetKind().(*structpb.Value_NumberValue)
	if !ok || math.IsNaN(v.NumberValue) || math.IsInf(v.NumberValue, 0) || v.NumberValue < 0 {
		return 0, false
	}
	return v.NumberValue, true
}
