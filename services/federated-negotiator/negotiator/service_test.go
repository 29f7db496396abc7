package negotiator_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/internal/store/storetest"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	running  = negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING
	agreed   = negotiatorv1.NegotiationState_NEGOTIATION_STATE_AGREED
	rejected = negotiatorv1.NegotiationState_NEGOTIATION_STATE_REJECTED
	expired  = negotiatorv1.NegotiationState_NEGOTIATION_STATE_EXPIRED
)

// Five regions, two of which refuse medium-impact changes (spent error budget).
const twoRefuse = `
regions:
  - {name: eu-west, weight: 3}
  - {name: eu-central, weight: 2}
  - {name: us-east, weight: 3}
  - {name: us-west, weight: 2, error_budget: 0.05}
  - {name: ap-south, weight: 1, error_budget: 0.05}
`

// Five regions whose capacities counter an offer of 12 replicas: a majority
// supports 10 (eu-west, us-west and eu-central).
const capacities = `
regions:
  - {name: eu-west, capacity: 50}
  - {name: eu-central, capacity: 10}
  - {name: us-east, capacity: 8}
  - {name: us-west, capacity: 20}
  - {name: ap-south, capacity: 6}
`

func regionsConfig(t testing.TB, yaml string) *negotiator.RegionsConfig {
	t.Helper()
	c, err := negotiator.ParseRegions([]byte(yaml))
	require.NoError(t, err)
	return c
}

// backends lists the stores the service tests run on. Postgres is skipped when
// unreachable, unless FABRIC_REQUIRE_POSTGRES=1.
var backends = []string{store.BackendSQLite, store.BackendPostgres}

// storeOpener returns a function opening the same (initially empty) database
// each time, so a test can close and reopen it like a restarted fabric.
func storeOpener(t *testing.T, backend string) func() store.Store {
	t.Helper()
	cfg := store.Config{DataDir: filepath.Join(t.TempDir(), "data")}
	if backend == store.BackendPostgres {
		cfg = store.Config{PostgresDSN: pgtest.NewDSN(t)}
	}
	return func() store.Store {
		st, err := store.Open(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() }) // registered before the service's: closes after it
		return st
	}
}

// proposals are the manifests the coordinator would send with each start, by
// tenant and proposal id.
type proposals struct {
	mu sync.Mutex
	m  map[string]*typesv1.Manifest // tenant/id
}

func (p *proposals) add(tenant, id string, m *typesv1.Manifest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*typesv1.Manifest{}
	}
	p.m[tenant+"/"+id] = m
}

// manifest is the tenant's manifest of proposal id, or nil.
func (p *proposals) manifest(tenant, id string) *typesv1.Manifest {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.m[tenant+"/"+id]; ok {
		return proto.Clone(m).(*typesv1.Manifest)
	}
	return nil
}

type harness struct {
	svc       *negotiator.Service
	store     store.Store
	reg       *prometheus.Registry
	proposals *proposals
	finished  chan *negotiatorv1.Negotiation
}

type option func(*negotiator.Deps)

func newService(t *testing.T, st store.Store, p *proposals, regions string, opts ...option) *harness {
	t.Helper()
	h := &harness{store: st, reg: prometheus.NewRegistry(), proposals: p, finished: make(chan *negotiatorv1.Negotiation, 16)}
	deps := negotiator.Deps{
		Store:           st,
		KeySeed:         testSeed,
		Registerer:      h.reg,
		DecisionTimeout: 10 * time.Second,
		Regions:         regionsConfig(t, regions),
		OnFinished:      func(_ context.Context, n *negotiatorv1.Negotiation) { h.finished <- n },
	}
	for _, o := range opts {
		o(&deps)
	}
	svc, err := negotiator.NewService(deps)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	h.svc = svc
	return h
}

func as(tenant string) context.Context {
	return auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "tester", TenantID: tenant, Roles: []string{auth.RoleProposer}})
}

// startErr starts a negotiation as the coordinator does: the request carries the
// proposal's manifest (from h.proposals, unless the request has one).
func (h *harness) startErr(tenant string, req *negotiatorv1.StartNegotiationRequest) (*negotiatorv1.StartNegotiationResponse, error) {
	if req.Manifest == nil && h.proposals != nil {
		req.Manifest = h.proposals.manifest(tenant, req.GetProposalId())
	}
	return h.svc.StartNegotiation(as(tenant), req)
}

func (h *harness) start(t *testing.T, tenant string, req *negotiatorv1.StartNegotiationRequest) *negotiatorv1.Negotiation {
	t.Helper()
	resp, err := h.startErr(tenant, req)
	require.NoError(t, err)
	n := resp.GetNegotiation()
	require.Equal(t, running, n.GetState())
	require.Equal(t, int32(1), n.GetRound())
	return n
}

func (h *harness) status(t *testing.T, tenant, id string) *negotiatorv1.Negotiation {
	t.Helper()
	resp, err := h.svc.GetNegotiationStatus(as(tenant), &negotiatorv1.GetNegotiationStatusRequest{Id: id})
	require.NoError(t, err)
	return resp.GetNegotiation()
}

// waitEnd waits for the negotiation to leave RUNNING and returns it.
func (h *harness) waitEnd(t *testing.T, tenant, id string) *negotiatorv1.Negotiation {
	t.Helper()
	var n *negotiatorv1.Negotiation
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		resp, err := h.svc.GetNegotiationStatus(as(tenant), &negotiatorv1.GetNegotiationStatusRequest{Id: id})
		require.NoError(c, err)
		n = resp.GetNegotiation()
		assert.NotEqual(c, running, n.GetState())
	}, 20*time.Second, 5*time.Millisecond)
	return n
}

func scale(replicas float64) *typesv1.Manifest {
	return manifest("medium", map[string]any{"replicas": replicas})
}

// requireSignedVotes checks every vote against the region's recorded key.
func requireSignedVotes(t *testing.T, n *negotiatorv1.Negotiation) {
	t.Helper()
	keys := map[string]*negotiatorv1.RegionProgress{}
	for _, r := range n.GetRegions() {
		keys[r.GetRegion()] = r
	}
	for _, v := range n.GetVotes() {
		r := keys[v.GetRegion()]
		require.NotNil(t, r, "vote of an unknown region %s", v.GetRegion())
		pub, err := regionkeys.ParsePublicKeyPEM(r.GetPublicKey())
		require.NoError(t, err)
		require.Equal(t, r.GetKeyId(), v.GetKeyId())
		require.NoError(t, negotiator.VerifyVote(pub, n.GetProposalDigest(), v.GetRound(), v.GetRegion(), v.GetVerdict(), v.GetSignature()),
			"vote of %s in round %d", v.GetRegion(), v.GetRound())
	}
}

// The acceptance case: with 5 regions of which 2 refuse, majority agrees and
// unanimous does not.
func TestTwoOfFiveRefuse(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			p := &proposals{}
			h := newService(t, storeOpener(t, backend)(), p, twoRefuse)
			p.add("t1", "p-majority", scale(4))
			p.add("t1", "p-unanimous", scale(4))
			p.add("t1", "p-weighted", scale(4))

			maj := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p-majority"})
			require.Equal(t, negotiatorv1.QuorumRule_QUORUM_RULE_MAJORITY, maj.GetQuorumRule(), "the default rule")
			require.Equal(t, int32(5), maj.GetVotesExpected())
			una := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p-unanimous", QuorumRule: unanimous})
			wei := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p-weighted", QuorumRule: weighted})

			got := h.waitEnd(t, "t1", maj.GetId())
			require.Equal(t, agreed, got.GetState(), got.GetReason())
			require.Contains(t, got.GetReason(), "majority quorum reached")
			require.True(t, proto.Equal(scale(4), got.GetFinalManifest()), "agreed on the offer")
			require.Zero(t, got.GetTimeLeftMs())
			require.GreaterOrEqual(t, len(got.GetVotes()), 3)
			requireSignedVotes(t, got)

			got = h.waitEnd(t, "t1", una.GetId())
			require.Equal(t, rejected, got.GetState(), got.GetReason())
			require.Contains(t, got.GetReason(), "unanimous quorum impossible")
			require.Nil(t, got.GetFinalManifest())
			requireSignedVotes(t, got)
			for _, v := range got.GetVotes() {
				if v.GetVerdict() == reject {
					require.Contains(t, v.GetReason(), "error budget")
				}
			}

			got = h.waitEnd(t, "t1", wei.GetId())
			require.Equal(t, agreed, got.GetState(), "accepting weight 8 of 11: %s", got.GetReason())
		})
	}
}

func TestSilentRegionsExpire(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		regions string
		silent  []string
	}{
		"quorum needs a silent region": {`
regions:
  - {name: eu-west}
  - {name: eu-central}
  - {name: us-east, silent: true}
  - {name: us-west, silent: true}
  - {name: ap-south, silent: true}
`, []string{"us-east", "us-west", "ap-south"}},
		"every region silent": {`
regions:
  - {name: eu-west, silent: true}
  - {name: us-east, silent: true}
`, []string{"eu-west", "us-east"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := &proposals{}
			h := newService(t, storeOpener(t, store.BackendSQLite)(), p, tc.regions)
			p.add("t1", "p1", scale(3))
			n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", DeadlineMs: 200})
			require.LessOrEqual(t, n.GetTimeLeftMs(), int64(200))
			require.Equal(t, n.GetCreatedAt().AsTime().Add(200*time.Millisecond), n.GetDeadline().AsTime())

			got := h.waitEnd(t, "t1", n.GetId())
			require.Equal(t, expired, got.GetState())
			require.Contains(t, got.GetReason(), "the deadline of 200ms passed in round 1")
			_, missing, ok := strings.Cut(got.GetReason(), "; no answer from ")
			require.True(t, ok, got.GetReason())
			for _, r := range tc.silent {
				require.Contains(t, strings.Split(missing, ", "), r, "the reason names every silent region")
			}
			require.Zero(t, got.GetTimeLeftMs())
			require.Equal(t, got.GetId(), (<-h.finished).GetId(), "OnFinished hears of the expiry")
		})
	}
}

func TestCountersAgreeInRoundTwo(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			p := &proposals{}
			h := newService(t, storeOpener(t, backend)(), p, capacities)
			p.add("t1", "p1", scale(12))
			n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1"})

			got := h.waitEnd(t, "t1", n.GetId())
			require.Equal(t, agreed, got.GetState(), got.GetReason())
			require.Equal(t, int32(2), got.GetRound())
			require.Equal(t, 10.0, got.GetFinalManifest().GetParameters().GetFields()["replicas"].GetNumberValue())
			require.True(t, proto.Equal(got.GetOffer(), got.GetFinalManifest()))
			requireSignedVotes(t, got)

			byRound := map[int32]map[string]*negotiatorv1.Vote{}
			for _, v := range got.GetVotes() {
				if byRound[v.GetRound()] == nil {
					byRound[v.GetRound()] = map[string]*negotiatorv1.Vote{}
				}
				byRound[v.GetRound()][v.GetRegion()] = v
			}
			require.Len(t, byRound[1], 5, "round 1 needed every vote to see it cannot pass")
			require.Equal(t, counter, byRound[1]["us-east"].GetVerdict())
			require.Equal(t, 8.0, byRound[1]["us-east"].GetCounter().GetParameters().GetFields()["replicas"].GetNumberValue())
			require.Contains(t, byRound[1]["us-east"].GetReason(), "capacity is 8 replicas")
			require.Equal(t, accept, byRound[1]["eu-west"].GetVerdict())
			require.Equal(t, counter, byRound[1]["eu-central"].GetVerdict())
			require.GreaterOrEqual(t, len(byRound[2]), 3)

			for _, r := range got.GetRegions() {
				if r.GetRegion() == "eu-central" && r.GetAnswered() {
					require.Equal(t, accept, r.GetLastVerdict(), "10 replicas fit eu-central's capacity")
				}
			}
		})
	}
}

func TestRoundLimitRejects(t *testing.T) {
	t.Parallel()
	p := &proposals{}
	h := newService(t, storeOpener(t, store.BackendSQLite)(), p, "max_rounds: 1\n"+capacities)
	p.add("t1", "p1", scale(12))
	n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1"})
	require.Equal(t, int32(1), n.GetMaxRounds())
	got := h.waitEnd(t, "t1", n.GetId())
	require.Equal(t, rejected, got.GetState())
	require.Contains(t, got.GetReason(), "no agreement after 1 rounds")
}

// Close stops the rounds without ending the negotiation; after a restart (a
// new service on the reopened store) Resume finishes it from the stored votes.
func TestResumeAfterRestart(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			open := storeOpener(t, backend)
			p := &proposals{}
			p.add("t1", "p1", scale(3))

			// Before the restart only eu-west answers.
			st := open()
			before := newService(t, st, p, `
regions:
  - {name: eu-west}
  - {name: eu-central, silent: true}
  - {name: us-east, silent: true}
  - {name: us-west, silent: true}
  - {name: ap-south, silent: true}
`)
			n := before.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", DeadlineMs: 600000})
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				resp, err := before.svc.GetNegotiationStatus(as("t1"), &negotiatorv1.GetNegotiationStatusRequest{Id: n.GetId()})
				require.NoError(c, err)
				assert.Equal(c, int32(1), resp.GetNegotiation().GetVotesIn())
			}, 10*time.Second, 5*time.Millisecond)
			again, err := before.startErr("t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1"})
			require.NoError(t, err)
			require.Equal(t, n.GetId(), again.GetNegotiation().GetId(), "a second start returns the running negotiation")
			require.NoError(t, before.svc.Close())
			require.NoError(t, before.svc.Close(), "Close is idempotent")
			_, err = before.startErr("t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p2", Manifest: scale(3)})
			require.Equal(t, codes.Unavailable, status.Code(err), "a closed service starts nothing")

			stored, err := st.Negotiations().Get(t.Context(), "t1", n.GetId())
			require.NoError(t, err)
			require.Equal(t, store.NegotiationRunning, stored.State, "a shutdown never ends a negotiation")
			votes, err := st.Negotiations().ListVotes(t.Context(), "t1", n.GetId())
			require.NoError(t, err)
			require.Empty(t, votes, "a round's votes are stored with its outcome, not one by one")
			require.NoError(t, st.Close())
			select {
			case f := <-before.finished:
				t.Fatalf("OnFinished called on shutdown: %v", f)
			default:
			}

			// After the restart every region answers.
			after := newService(t, open(), p, twoRefuse)
			require.NoError(t, after.svc.Resume(t.Context()))
			require.NoError(t, after.svc.Resume(t.Context()), "a second Resume does not run it twice")
			got := after.waitEnd(t, "t1", n.GetId())
			require.Equal(t, agreed, got.GetState(), got.GetReason())
			requireSignedVotes(t, got)
			regions := map[string]int{}
			for _, v := range got.GetVotes() {
				regions[v.GetRegion()]++
			}
			require.Equal(t, 1, regions["eu-west"], "eu-west's unstored vote is asked again and counts once")
			require.Equal(t, n.GetId(), (<-after.finished).GetId())
		})
	}
}

func TestResumeAfterDeadlineExpires(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			open := storeOpener(t, backend)
			p := &proposals{}
			p.add("t1", "p1", scale(3))
			st := open()
			before := newService(t, st, p, "regions: [{name: eu-west, silent: true}]")
			n := before.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", DeadlineMs: 60000})
			require.NoError(t, before.svc.Close())
			require.NoError(t, st.Close())

			later := func() time.Time { return time.Now().Add(2 * time.Minute) }
			after := newService(t, open(), p, "regions: [{name: eu-west}]", func(d *negotiator.Deps) { d.Now = later })
			require.NoError(t, after.svc.Resume(t.Context()))
			got := after.status(t, "t1", n.GetId())
			require.Equal(t, expired, got.GetState(), "expired by Resume itself, before it returns")
			require.Equal(t, "fabric restarted after the deadline", got.GetReason())
			require.Equal(t, expired, (<-after.finished).GetState())
		})
	}
}

// A RUNNING negotiation that no process runs any more is reported as stored by a read
// (reads never write) and ended EXPIRED by the background sweep.
func TestOrphanExpiresInTheBackground(t *testing.T) {
	t.Parallel()
	st := storeOpener(t, store.BackendSQLite)()
	h := newService(t, st, &proposals{}, twoRefuse)
	orphan := storetest.NewNegotiation("t1")
	orphan.CreatedAt = time.Now().Add(-time.Hour)
	orphan.Deadline = time.Now().Add(-time.Minute)
	_, err := st.Negotiations().Create(t.Context(), orphan)
	require.NoError(t, err)

	got := h.status(t, "t1", orphan.ID)
	require.Equal(t, negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING, got.GetState(), "a read changes nothing")
	stored, err := st.Negotiations().Get(t.Context(), "t1", orphan.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), stored.Version, "a read writes nothing")

	h.svc.SweepOrphans(t.Context())
	got = h.status(t, "t1", orphan.ID)
	require.Equal(t, expired, got.GetState())
	require.Contains(t, got.GetReason(), "no negotiator was running it")
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	p := &proposals{}
	h := newService(t, storeOpener(t, store.BackendSQLite)(), p, twoRefuse)
	p.add("t1", "p1", scale(3))
	n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1"})
	require.Equal(t, "t1", n.GetTenantId())

	_, err := h.svc.GetNegotiationStatus(as("t2"), &negotiatorv1.GetNegotiationStatusRequest{Id: n.GetId()})
	require.Equal(t, codes.NotFound, status.Code(err), "another tenant's negotiation does not exist")
	other, err := h.startErr("t2", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", Manifest: scale(3)})
	require.NoError(t, err)
	require.NotEqual(t, n.GetId(), other.GetNegotiation().GetId(), "another tenant's proposal of the same id is its own")
	require.Equal(t, "t2", other.GetNegotiation().GetTenantId())
	_, err = h.svc.GetNegotiationStatus(context.Background(), &negotiatorv1.GetNegotiationStatusRequest{Id: n.GetId()})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no principal, no answer")
	h.waitEnd(t, "t1", n.GetId())
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	p := &proposals{}
	h := newService(t, storeOpener(t, store.BackendSQLite)(), p, twoRefuse+`
tenants:
  t9: {regions: [eu-west, us-east]}
`)
	m := scale(3)
	m.Regions = []string{"eu-west", "mars-1"}
	p.add("t1", "mars", m)
	p.add("t1", "slow", scale(3))
	m2 := scale(3)
	m2.Regions = []string{"eu-central"}
	p.add("t9", "outside", m2)

	past := timestamppb.New(time.Now().Add(-time.Second))
	for name, tc := range map[string]struct {
		tenant, id string
		req        *negotiatorv1.StartNegotiationRequest
		code       codes.Code
		msg        string
	}{
		"no manifest":           {"t1", "nope", nil, codes.InvalidArgument, "manifest is required"},
		"region without agent":  {"t1", "mars", nil, codes.FailedPrecondition, `manifest.regions[1] "mars-1" has no negotiating agent`},
		"region outside tenant": {"t9", "outside", nil, codes.FailedPrecondition, "regions: eu-west, us-east"},
		"digest of another manifest": {"t1", "slow", &negotiatorv1.StartNegotiationRequest{ProposalId: "slow", ManifestSha256: strings.Repeat("ab", 32)},
			codes.InvalidArgument, "is not the digest of the manifest"},
		"deadline passed": {"t1", "slow", &negotiatorv1.StartNegotiationRequest{ProposalId: "slow", Deadline: past},
			codes.FailedPrecondition, "has passed"},
	} {
		req := tc.req
		if req == nil {
			req = &negotiatorv1.StartNegotiationRequest{ProposalId: tc.id}
		}
		_, err := h.startErr(tc.tenant, req)
		require.Equal(t, tc.code, status.Code(err), "%s: %v", name, err)
		require.Contains(t, status.Convert(err).Message(), tc.msg, name)
	}
	ns, err := h.store.Negotiations().ListByProposal(t.Context(), "t1", "slow", 0)
	require.NoError(t, err)
	require.Empty(t, ns, "a refused start negotiates nothing")
}

func TestManifestRegionsPickVoters(t *testing.T) {
	t.Parallel()
	p := &proposals{}
	h := newService(t, storeOpener(t, store.BackendSQLite)(), p, twoRefuse)
	m := scale(3)
	m.Regions = []string{"us-east", "eu-west"}
	p.add("t1", "p1", m)
	n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", QuorumRule: unanimous})
	require.Equal(t, int32(2), n.GetVotesExpected())
	var names []string
	for _, r := range n.GetRegions() {
		names = append(names, r.GetRegion())
		require.NotEmpty(t, r.GetPublicKey())
		require.Len(t, r.GetKeyId(), 64)
	}
	require.Equal(t, []string{"us-east", "eu-west"}, names)
	require.Equal(t, int64(3), n.GetRegions()[0].GetWeight())
	got := h.waitEnd(t, "t1", n.GetId())
	require.Equal(t, agreed, got.GetState(), "both picked regions accept: %s", got.GetReason())
	require.Len(t, got.GetVotes(), 2)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	p := &proposals{}
	h := newService(t, storeOpener(t, store.BackendSQLite)(), p, capacities)
	p.add("t1", "p1", scale(12))
	n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1"})
	h.waitEnd(t, "t1", n.GetId())
	<-h.finished
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		mfs, err := h.reg.Gather()
		require.NoError(c, err)
		for _, mf := range mfs {
			if mf.GetName() == "fabric_negotiations_running" {
				assert.Zero(c, mf.GetMetric()[0].GetGauge().GetValue(), "the goroutine exits after OnFinished")
			}
		}
	}, 10*time.Second, 5*time.Millisecond)

	mfs, err := h.reg.Gather()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		switch mf.GetName() {
		case "fabric_negotiations_running":
			require.Zero(t, mf.GetMetric()[0].GetGauge().GetValue(), "nothing runs any more")
		case "fabric_negotiation_duration_seconds":
			require.Len(t, mf.GetMetric(), 1, "one outcome: agreed")
			require.Equal(t, uint64(1), mf.GetMetric()[0].GetHistogram().GetSampleCount())
		case "fabric_negotiation_rounds":
			require.Equal(t, "agreed", mf.GetMetric()[0].GetLabel()[0].GetValue())
			require.Equal(t, 2.0, mf.GetMetric()[0].GetHistogram().GetSampleSum(), "two rounds")
		case "fabric_negotiation_votes_total":
			byVerdict := map[string]float64{}
			for _, m := range mf.GetMetric() {
				byVerdict[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
			require.GreaterOrEqual(t, byVerdict["counter"], 3.0, "round 1: eu-central, us-east, ap-south (round 2 may add some)")
			require.GreaterOrEqual(t, byVerdict["accept"], 5.0, "2 in round 1, at least 3 in round 2")
			require.Zero(t, byVerdict["reject"])
		}
	}
	require.Subset(t, keys(seen), []string{"fabric_negotiations_running", "fabric_negotiation_duration_seconds",
		"fabric_negotiation_rounds", "fabric_negotiation_votes_total"})

	_, err = negotiator.NewService(negotiator.Deps{Store: h.store, KeySeed: testSeed, Registerer: h.reg})
	require.ErrorContains(t, err, "register metrics", "metrics are registered on the Registerer passed in")
}

// scripted is an Agent whose answers tests control.
type scripted struct {
	region   string
	key      ed25519.PrivateKey
	failures atomic.Int32 // errors to return before answering
	badSig   bool
	calls    atomic.Int32
}

func newScripted(t *testing.T, region string) *scripted {
	key, err := regionkeys.Derive(testSeed, region)
	require.NoError(t, err)
	return &scripted{region: region, key: key}
}

func (a *scripted) Region() string               { return a.region }
func (a *scripted) PublicKey() ed25519.PublicKey { return a.key.Public().(ed25519.PublicKey) }
func (a *scripted) Vote(_ context.Context, o negotiator.Offer) (negotiator.Vote, error) {
	a.calls.Add(1)
	if a.failures.Add(-1) >= 0 {
		return negotiator.Vote{}, fmt.Errorf("region %s unreachable", a.region)
	}
	digest := o.ProposalDigest
	if a.badSig {
		digest = strings.Repeat("0", 64)
	}
	sig, err := negotiator.SignVote(a.key, digest, o.Round, a.region, accept)
	return negotiator.Vote{Region: a.region, Round: o.Round, Verdict: accept, Reason: "ok\x00\xff", Signature: sig,
		KeyID: regionkeys.KeyID(a.PublicKey())}, err
}

// Failing agents are retried; a vote whose signature does not verify never counts.
func TestAgentFailuresAndForgeries(t *testing.T) {
	t.Parallel()
	flaky, forger := newScripted(t, "eu-central"), newScripted(t, "us-east")
	flaky.failures.Store(2)
	forger.badSig = true
	p := &proposals{}
	h := newService(t, storeOpener(t, store.BackendSQLite)(), p, `
regions: [{name: eu-west}, {name: eu-central}, {name: us-east}]
`, func(d *negotiator.Deps) {
		d.Agents = map[string]negotiator.Agent{"eu-central": flaky, "us-east": forger}
	})
	p.add("t1", "p1", scale(3))
	n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", QuorumRule: unanimous, DeadlineMs: 2000})
	got := h.waitEnd(t, "t1", n.GetId())
	require.Equal(t, expired, got.GetState(), "unanimity needs us-east, whose votes never verify")
	require.Contains(t, got.GetReason(), "no answer from us-east")
	require.GreaterOrEqual(t, forger.calls.Load(), int32(2), "an invalid vote is asked for again")
	require.GreaterOrEqual(t, flaky.calls.Load(), int32(3), "a failing region is retried")
	regions := map[string]string{}
	for _, v := range got.GetVotes() {
		regions[v.GetRegion()] = v.GetReason()
	}
	require.Equal(t, map[string]string{"eu-west": "within capacity, error budget and cost ceiling", "eu-central": "ok\uFFFD"}, regions,
		"agent text is stored as valid UTF-8 without NUL")
	requireSignedVotes(t, got)
}

func TestNewServiceChecksDeps(t *testing.T) {
	t.Parallel()
	st := storeOpener(t, store.BackendSQLite)()
	var names []string
	for _, r := range negotiator.DefaultRegions().Regions {
		names = append(names, r.Name)
	}
	seedRegistry, err := regionkeys.FromSeed(testSeed, names)
	require.NoError(t, err)
	otherRegistry, err := regionkeys.FromSeed(bytes.Repeat([]byte{8}, regionkeys.SeedSize), names)
	require.NoError(t, err)
	partialRegistry, err := regionkeys.FromSeed(testSeed, []string{"eu-west"})
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		deps negotiator.Deps
		err  string
	}{
		"no store": {negotiator.Deps{KeySeed: testSeed}, "Store is required"},
		"no seed":  {negotiator.Deps{Store: st}, "KeySeed"},
		"stray agent": {negotiator.Deps{Store: st, KeySeed: testSeed,
			Agents: map[string]negotiator.Agent{"mars-1": newScripted(t, "mars-1")}}, `Agents["mars-1"]: not a configured region`},
		"wrong agent": {negotiator.Deps{Store: st, KeySeed: testSeed,
			Agents: map[string]negotiator.Agent{"eu-west": newScripted(t, "us-east")}}, `speaks for region "us-east"`},
		"region signs with a key the registry does not trust": {negotiator.Deps{Store: st, KeySeed: testSeed,
			RegionKeys: otherRegistry}, "but the registry trusts"},
		"region missing from the registry": {negotiator.Deps{Store: st, KeySeed: testSeed,
			RegionKeys: partialRegistry}, `region "eu-central" has no key in the registry`},
	} {
		_, err := negotiator.NewService(tc.deps)
		require.ErrorContains(t, err, tc.err, name)
	}
	svc, err := negotiator.NewService(negotiator.Deps{Store: st, KeySeed: testSeed})
	require.NoError(t, err, "every other dependency has a default")
	require.NoError(t, svc.Close())
	svc, err = negotiator.NewService(negotiator.Deps{Store: st, KeySeed: testSeed, RegionKeys: seedRegistry})
	require.NoError(t, err, "the simulation registry is the seed's keys")
	require.Equal(t, seedRegistry.Trusted(), svc.RegionKeys())
	require.NoError(t, svc.Close())
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
