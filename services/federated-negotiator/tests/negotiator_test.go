// Package tests runs the federated negotiator on the fabric's platform server
// (internal/server: the real interceptor chain, JWT tenancy, validation, the REST
// gateway and /metrics) in-process, and checks the I.4.3 behaviour over REST and
// gRPC on both stores. It does not go through internal/app: the module graph still
// wires the negotiator's placeholder (see negotiator.New) until the app wires
// negotiator.NewService.
package tests

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Five regions (answering after a little latency), two of which refuse
// medium-impact changes, and a silent one (mars-1) that tenants "quiet" and
// "mixed" negotiate with.
const regions = `
regions:
  - {name: eu-west, weight: 3, latency: 30ms}
  - {name: eu-central, weight: 2, latency: 60ms}
  - {name: us-east, weight: 3, latency: 90ms}
  - {name: us-west, weight: 2, latency: 10ms, error_budget: 0.05}
  - {name: ap-south, weight: 1, latency: 10ms, error_budget: 0.05}
  - {name: mars-1, silent: true}
tenants:
  t1: {regions: [eu-west, eu-central, us-east, us-west, ap-south]}
  t2: {regions: [eu-west, eu-central, us-east, us-west, ap-south]}
  quiet: {regions: [mars-1]}
  mixed: {regions: [eu-west, mars-1]}
`

type fabric struct {
	srv    *server.Server
	signer *auth.Signer
}

// proposals holds one manifest per tenant and id.
var proposals = map[string]*typesv1.Manifest{
	"t1/p1": {Action: "scale", Target: "serviceX", Parameters: &structpb.Struct{Fields: map[string]*structpb.Value{
		"replicas": structpb.NewNumberValue(4)}}},
	"quiet/p1": {Action: "scale", Target: "serviceX"},
	"mixed/p1": {Action: "scale", Target: "serviceX"},
}

// startBody is POST /negotiate for t1's p1, as the coordinator sends it: with the manifest.
const startBody = `{"proposal_id":"p1","manifest":{"action":"scale","target":"serviceX","parameters":{"replicas":4}}}`

// start serves the negotiator the way the app will: NewService, Resume, the
// platform server with the service's Definition (and so its Close on Stop).
func start(t *testing.T, backend string) *fabric {
	t.Helper()
	cfg := store.Config{DataDir: filepath.Join(t.TempDir(), "data")}
	if backend == store.BackendPostgres {
		cfg = store.Config{PostgresDSN: pgtest.NewDSN(t)}
	}
	st, err := store.Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })

	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	verifier, err := auth.NewVerifier(key.Public(), "decision-fabric", "decision-fabric")
	require.NoError(t, err)
	seed, err := regionkeys.LoadOrCreateSeed(t.TempDir())
	require.NoError(t, err)
	rc, err := negotiator.ParseRegions([]byte(regions))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)

	svc, err := negotiator.NewService(negotiator.Deps{
		Store: st, KeySeed: seed, Logger: log,
		Registerer: reg, DecisionTimeout: 5 * time.Second, Regions: rc,
	})
	require.NoError(t, err)
	require.NoError(t, svc.Resume(context.Background()))
	srv, err := server.New(context.Background(), svc.Definition(), server.Options{
		Listen:          config.Listen{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"},
		Logger:          log,
		Verifier:        verifier,
		MaxRequestBytes: 1 << 20,
		ShutdownTimeout: 5 * time.Second,
		Registry:        reg,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return &fabric{srv: srv, signer: auth.NewSigner(key, "decision-fabric", "decision-fabric")}
}

func (f *fabric) token(t *testing.T, tenant string, roles ...string) string {
	t.Helper()
	tok, err := f.signer.Mint("tester", tenant, roles, time.Hour)
	require.NoError(t, err)
	return tok
}

func (f *fabric) do(t *testing.T, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+f.srv.HTTPAddr()+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

// negotiation decodes {"negotiation": ...} from a REST body.
func negotiation(t require.TestingT, raw []byte) *negotiatorv1.Negotiation {
	var resp negotiatorv1.GetNegotiationStatusResponse
	require.NoError(t, protojson.Unmarshal(raw, &resp), string(raw))
	return resp.GetNegotiation()
}

func (f *fabric) client(t *testing.T) negotiatorv1.NegotiatorServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(f.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return negotiatorv1.NewNegotiatorServiceClient(conn)
}

func withToken(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// The spec's verification: POST /negotiate {"proposal_id":"p1"} answers at once with
// a RUNNING negotiation; GET /negotiate/{id}/status follows it to the outcome.
func TestNegotiateOverREST(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{store.BackendSQLite, store.BackendPostgres} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			f := start(t, backend)
			tok := f.token(t, "t1", auth.RoleProposer)

			code, body := f.do(t, http.MethodPost, "/negotiate", tok, startBody)
			require.Equal(t, http.StatusOK, code, string(body))
			require.Contains(t, string(body), `"votes_expected":5`, "proto field names, as the spec writes them")
			n := negotiation(t, body)
			require.Equal(t, negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING, n.GetState())
			require.Equal(t, "t1", n.GetTenantId())
			require.Len(t, n.GetRegions(), 5)
			require.Positive(t, n.GetTimeLeftMs())

			var final *negotiatorv1.Negotiation
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				code, body := f.do(t, http.MethodGet, "/negotiate/"+n.GetId()+"/status", tok, "")
				require.Equal(c, http.StatusOK, code, string(body))
				final = negotiation(c, body)
				assert.NotEqual(c, negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING, final.GetState())
			}, 20*time.Second, 10*time.Millisecond)
			require.Equal(t, negotiatorv1.NegotiationState_NEGOTIATION_STATE_AGREED, final.GetState(), final.GetReason())
			require.Equal(t, 4.0, final.GetFinalManifest().GetParameters().GetFields()["replicas"].GetNumberValue())

			// Another tenant sees nothing.
			code, _ = f.do(t, http.MethodGet, "/negotiate/"+n.GetId()+"/status", f.token(t, "t2", auth.RoleAuditor), "")
			require.Equal(t, http.StatusNotFound, code)

			// Metrics are on the service's /metrics. The outcome is stored (and so read
			// as AGREED) just before the negotiation's goroutine observes its duration.
			var metrics []byte
			require.Eventually(t, func() bool {
				_, metrics = f.do(t, http.MethodGet, "/metrics", "", "")
				return strings.Contains(string(metrics), `fabric_negotiation_duration_seconds_count{outcome="agreed"} 1`)
			}, 5*time.Second, 10*time.Millisecond, "the agreed negotiation's duration is observed")
			require.Contains(t, string(metrics), `fabric_negotiation_votes_total{verdict="accept"}`)
		})
	}
}

func TestRESTErrors(t *testing.T) {
	t.Parallel()
	f := start(t, store.BackendSQLite)
	tok := f.token(t, "t1", auth.RoleProposer)
	unknownID := ulid.Make().String()
	for name, tc := range map[string]struct {
		method, path, token, body string
		status                    int
		msg                       string
	}{
		"no proposal_id":    {http.MethodPost, "/negotiate", tok, `{}`, http.StatusBadRequest, "proposal_id is required"},
		"bad proposal_id":   {http.MethodPost, "/negotiate", tok, `{"proposal_id":"p 1"}`, http.StatusBadRequest, "proposal_id"},
		"deadline too long": {http.MethodPost, "/negotiate", tok, `{"proposal_id":"p1","deadline_ms":600001}`, http.StatusBadRequest, "deadline_ms 600001"},
		"negative deadline": {http.MethodPost, "/negotiate", tok, `{"proposal_id":"p1","deadline_ms":-1}`, http.StatusBadRequest, "deadline_ms -1"},
		"unknown rule":      {http.MethodPost, "/negotiate", tok, `{"proposal_id":"p1","quorum_rule":9}`, http.StatusBadRequest, "quorum_rule 9"},
		"unknown field":     {http.MethodPost, "/negotiate", tok, `{"proposal_id":"p1","rule":"x"}`, http.StatusBadRequest, ""},
		"no manifest":       {http.MethodPost, "/negotiate", tok, `{"proposal_id":"p2"}`, http.StatusBadRequest, "manifest is required"},
		"digest mismatch": {http.MethodPost, "/negotiate", tok, `{"proposal_id":"p2","manifest":{"action":"scale"},"manifest_sha256":"` + strings.Repeat("0", 64) + `"}`,
			http.StatusBadRequest, "is not the digest of the manifest"},
		"deadline passed": {http.MethodPost, "/negotiate", tok, `{"proposal_id":"p2","manifest":{"action":"scale"},"deadline":"2020-01-01T00:00:00Z"}`,
			http.StatusConflict, "has passed"},
		"malformed id":        {http.MethodGet, "/negotiate/n1/status", tok, "", http.StatusBadRequest, "not a negotiation id"},
		"unknown negotiation": {http.MethodGet, "/negotiate/" + unknownID + "/status", tok, "", http.StatusNotFound, "not found"},
		"no token":            {http.MethodPost, "/negotiate", "", startBody, http.StatusUnauthorized, ""},
		"auditor cannot start": {http.MethodPost, "/negotiate", f.token(t, "t1", auth.RoleAuditor), startBody,
			http.StatusForbidden, "StartNegotiation needs one of the roles"},
	} {
		code, body := f.do(t, tc.method, tc.path, tc.token, tc.body)
		require.Equal(t, tc.status, code, "%s: %s", name, body)
		require.Contains(t, string(body), tc.msg, name)
	}
}

// WatchNegotiation streams the state at once, then each change (and a heartbeat
// at least every second), and closes after the final state.
func TestWatchNegotiation(t *testing.T) {
	t.Parallel()
	f := start(t, store.BackendSQLite)
	c := f.client(t)
	// eu-west accepts at once; unanimity also needs mars-1, which never answers.
	ctx := withToken(f.token(t, "mixed", auth.RoleProposer))
	started, err := c.StartNegotiation(ctx, &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", Manifest: proposals["mixed/p1"],
		QuorumRule: negotiatorv1.QuorumRule_QUORUM_RULE_UNANIMOUS, DeadlineMs: 1500})
	require.NoError(t, err)
	id := started.GetNegotiation().GetId()

	stream, err := c.WatchNegotiation(ctx, &negotiatorv1.WatchNegotiationRequest{Id: id})
	require.NoError(t, err)
	var updates []*negotiatorv1.Negotiation
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		updates = append(updates, msg.GetNegotiation())
	}
	require.GreaterOrEqual(t, len(updates), 2, "the state at once, then at least the end")
	require.Equal(t, negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING, updates[0].GetState())
	sawProgress := false
	for i, u := range updates {
		if u.GetState() == negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING && u.GetVotesIn() == 1 {
			sawProgress = true
			require.Equal(t, int32(2), u.GetVotesExpected())
			require.Positive(t, u.GetTimeLeftMs())
		}
		if i > 0 {
			require.GreaterOrEqual(t, len(u.GetVotes()), len(updates[i-1].GetVotes()), "votes only accumulate")
		}
	}
	require.True(t, sawProgress, "a RUNNING update with eu-west's vote in")
	last := updates[len(updates)-1]
	require.Equal(t, negotiatorv1.NegotiationState_NEGOTIATION_STATE_EXPIRED, last.GetState())
	require.Contains(t, last.GetReason(), "1 of 2 votes in; no answer from mars-1")

	// Errors as GetNegotiationStatus: other tenant, malformed id, no token.
	other, err := c.WatchNegotiation(withToken(f.token(t, "t2", auth.RoleAuditor)), &negotiatorv1.WatchNegotiationRequest{Id: id})
	require.NoError(t, err)
	_, err = other.Recv()
	require.Equal(t, codes.NotFound, status.Code(err))
	bad, err := c.WatchNegotiation(ctx, &negotiatorv1.WatchNegotiationRequest{Id: "n1"})
	require.NoError(t, err)
	_, err = bad.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	anon, err := c.WatchNegotiation(context.Background(), &negotiatorv1.WatchNegotiationRequest{Id: id})
	require.NoError(t, err)
	_, err = anon.Recv()
	require.Equal(t, codes.Unauthenticated, status.Code(err))
}

// With regions that never answer, the negotiation ends EXPIRED within its deadline,
// with a reason, and a watcher sees it end.
func TestSilentRegionsExpireOverGRPC(t *testing.T) {
	t.Parallel()
	f := start(t, store.BackendSQLite)
	c := f.client(t)
	ctx := withToken(f.token(t, "quiet", auth.RoleProposer))
	started, err := c.StartNegotiation(ctx, &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", Manifest: proposals["quiet/p1"], DeadlineMs: 300})
	require.NoError(t, err)
	stream, err := c.WatchNegotiation(ctx, &negotiatorv1.WatchNegotiationRequest{Id: started.GetNegotiation().GetId()})
	require.NoError(t, err)
	var last *negotiatorv1.Negotiation
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		last = msg.GetNegotiation()
	}
	require.Equal(t, negotiatorv1.NegotiationState_NEGOTIATION_STATE_EXPIRED, last.GetState())
	require.Equal(t, "the deadline of 300ms passed in round 1 with 0 of 1 votes in; no answer from mars-1", last.GetReason())
	require.Zero(t, last.GetTimeLeftMs())

	got, err := c.GetNegotiationStatus(ctx, &negotiatorv1.GetNegotiationStatusRequest{Id: last.GetId()})
	require.NoError(t, err)
	require.Empty(t, got.GetNegotiation().GetVotes())
	require.False(t, got.GetNegotiation().GetRegions()[0].GetAnswered())
}
