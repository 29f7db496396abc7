package negotiator_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/federation"
	qc "github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

const fedToken = "federation-token-for-tests-0123"

// fleetRegion is one region of a test federation: its limits and, for a forger, a
// signing key other than the one the registry holds.
type fleetRegion struct {
	name    string
	limits  negotiator.RegionLimits
	forger  bool
	metrics *prometheus.Registry // the region's own (token refusals)
}

// startFleet serves each region's RegionService on its own loopback listener behind
// the federation token, and returns the registry that lists them.
func startFleet(t *testing.T, regions []*fleetRegion) *federation.Registry {
	t.Helper()
	var docs []map[string]any
	for _, r := range regions {
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		signWith := key
		if r.forger {
			_, signWith, err = ed25519.GenerateKey(rand.Reader)
			require.NoError(t, err)
		}
		r.limits.Region.Name = r.name
		srv, err := negotiator.NewRegionServer(negotiator.RegionServerConfig{Limits: r.limits, Key: signWith})
		require.NoError(t, err)
		r.metrics = prometheus.NewRegistry()
		authn, err := federation.NewAuthenticator(fedToken, r.metrics)
		require.NoError(t, err)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		g := grpc.NewServer(grpc.ChainUnaryInterceptor(authn.UnaryInterceptor()))
		negotiatorv1.RegisterRegionServiceServer(g, srv)
		go func() { _ = g.Serve(lis) }()
		t.Cleanup(g.Stop)
		docs = append(docs, map[string]any{"name": r.name, "endpoint": lis.Addr().String(), "public_key": regionkeys.PublicKeyPEM(pub)})
	}
	raw, err := json.Marshal(map[string]any{"regions": docs})
	require.NoError(t, err)
	reg, err := federation.ParseRegistry(raw)
	require.NoError(t, err)
	return reg
}

func fleetOf(names ...string) []*fleetRegion {
	out := make([]*fleetRegion, len(names))
	for i, n := range names {
		out[i] = &fleetRegion{name: n, limits: negotiator.RegionLimits{
			Region: negotiator.RegionConfig{ErrorBudget: 1, Capacity: 40}, MaxReplicas: 100, AllowedActions: []string{"scale"}}}
	}
	return out
}

func withFederation(reg *federation.Registry, token string) option {
	return func(d *negotiator.Deps) {
		opts, err := federation.TLSFiles{}.DialOptions(token)
		if err != nil {
			panic(err)
		}
		d.Regions, d.Federation = nil, &negotiator.Federation{Registry: reg, DialOptions: opts}
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

// Five regions as gRPC servers: the coordinator agrees with their signed votes, and
// the certificate verifies against the registry's keys alone.
func TestFederationAgrees(t *testing.T) {
	t.Parallel()
	fleet := fleetOf("eu-west", "eu-central", "us-east", "us-west", "ap-south")
	reg := startFleet(t, fleet)
	h := newService(t, storeOpener(t, store.BackendSQLite)(), &proposals{}, twoRefuse, withFederation(reg, fedToken))
	m := manifest("medium", map[string]any{"replicas": 12})
	n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", Manifest: m, DeadlineMs: 5000})
	n = h.waitEnd(t, "t1", n.GetId())
	require.Equal(t, agreed, n.GetState(), n.GetReason())
	requireSignedVotes(t, n)

	keys, err := reg.Keys()
	require.NoError(t, err)
	require.NoError(t, qc.Verify(qc.FromProto(n.GetQuorumCertificate()), keys.Trusted()))
	require.Len(t, n.GetRegions(), 5, "the registry's regions vote, not regions_file's")
}

// A nonsense manifest is refused by every region with the reason in its vote.
func TestFederationRefusesNonsense(t *testing.T) {
	t.Parallel()
	fleet := fleetOf("eu-west", "eu-central", "us-east")
	reg := startFleet(t, fleet)
	h := newService(t, storeOpener(t, store.BackendSQLite)(), &proposals{}, twoRefuse, withFederation(reg, fedToken))
	cases := map[string]struct {
		m    *typesv1.Manifest
		want string
	}{
		"unknown action": {&typesv1.Manifest{Action: "delete_everything", Target: "prod"}, `action "delete_everything" is not allowed`},
		"negative":       {manifest("low", map[string]any{"replicas": -5}), "invalid manifest"},
		"over limit":     {manifest("low", map[string]any{"replicas": 500}), "maximum of 100 replicas"},
	}
	i := 0
	for name, c := range cases {
		i++
		n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "nonsense-" + name[:3] + string(rune('0'+i)), Manifest: c.m, DeadlineMs: 5000})
		n = h.waitEnd(t, "t1", n.GetId())
		require.Equal(t, rejected, n.GetState(), name)
		require.NotEmpty(t, n.GetVotes())
		for _, v := range n.GetVotes() {
			require.Equal(t, negotiatorv1.Verdict_VERDICT_REJECT, v.GetVerdict(), name)
			require.Contains(t, v.GetReason(), c.want, name)
		}
	}
}

// A region signing with a key the registry does not hold is refused and counted; the
// others still decide. A coordinator with the wrong token is refused by the regions.
func TestFederationForgerAndToken(t *testing.T) {
	t.Parallel()
	fleet := fleetOf("eu-west", "eu-central", "us-east")
	fleet[2].forger = true
	reg := startFleet(t, fleet)
	h := newService(t, storeOpener(t, store.BackendSQLite)(), &proposals{}, twoRefuse, withFederation(reg, fedToken))
	n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1",
		Manifest: manifest("medium", map[string]any{"replicas": 12}), QuorumRule: negotiatorv1.QuorumRule_QUORUM_RULE_UNANIMOUS, DeadlineMs: 1500})
	n = h.waitEnd(t, "t1", n.GetId())
	require.Equal(t, expired, n.GetState(), "unanimity needs the forger's vote, which is never admitted")
	require.Contains(t, n.GetReason(), "no answer from us-east")
	require.GreaterOrEqual(t, counterValue(t, h.reg, "fabric_federation_votes_refused_total", "forged"), 1.0)

	bad := newService(t, storeOpener(t, store.BackendSQLite)(), &proposals{}, twoRefuse, withFederation(reg, "not-the-federation-token"))
	n = bad.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p2",
		Manifest: manifest("medium", map[string]any{"replicas": 12}), DeadlineMs: 800})
	n = bad.waitEnd(t, "t1", n.GetId())
	require.Equal(t, expired, n.GetState())
	require.Empty(t, n.GetVotes())
	for _, r := range fleet {
		require.GreaterOrEqual(t, counterValue(t, r.metrics, "fabric_federation_auth_refused_total", "wrong"), 1.0, r.name)
	}
}
