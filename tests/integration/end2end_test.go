// Package integration is the end-to-end suite (the spec's tests/integration/
// test_I.4_end2end): it starts the whole fabric in-process and drives it over REST and
// gRPC, in both topologies and on both stores.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// specBody is the spec's example body for POST /proposals, as written.
const specBody = `{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX"}}`

// each runs scenario against every topology and store, and the seven-process topology
// with the auditor on a database of its own (services own their data).
func each(t *testing.T, scenario func(t *testing.T, f *fabrictest.Fabric)) {
	for _, topo := range []fabrictest.Options{{Topology: fabrictest.AllInOne}, {Topology: fabrictest.Split},
		{Topology: fabrictest.Split, AuditorOwnStore: true}} {
		for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
			name := string(topo.Topology)
			if topo.AuditorOwnStore {
				name += "-auditor-own-store"
			}
			t.Run(fmt.Sprintf("%s/%s", name, st), func(t *testing.T) {
				t.Parallel()
				opts := topo
				opts.Store = st
				scenario(t, fabrictest.Start(t, opts))
			})
		}
	}
}

type proposalJSON struct {
	Proposal struct {
		ID             string         `json:"id"`
		TenantID       string         `json:"tenant_id"`
		Status         string         `json:"status"`
		Impact         string         `json:"impact"`
		DryRun         bool           `json:"dry_run"`
		PreStateSHA256 string         `json:"pre_state_sha256"`
		ManifestSHA256 string         `json:"manifest_sha256"`
		Manifest       map[string]any `json:"manifest"`
		TraceID        string         `json:"trace_id"`
	} `json:"proposal"`
	Created bool `json:"created"`
}

func decode(t *testing.T, r fabrictest.Response) proposalJSON {
	t.Helper()
	var p proposalJSON
	require.NoError(t, json.Unmarshal(r.Body, &p), string(r.Body))
	return p
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestHealthAndMetricsOnEveryService(t *testing.T) {
	each(t, func(t *testing.T, f *fabrictest.Fabric) {
		for _, name := range fabric.Names() {
			r := f.Do(t, http.MethodGet, name, "/health", "", "")
			require.Equal(t, http.StatusOK, r.Status, name)
			var h map[string]any
			require.NoError(t, json.Unmarshal(r.Body, &h))
			require.Equal(t, name, h["service"])
			require.Equal(t, "ok", h["status"])
			require.Equal(t, true, h["simulation_mode"])
			require.Equal(t, "PROCEED_SIMULATION", h["precheck_decision"])
			require.NotEmpty(t, h["version"])

			m := f.Do(t, http.MethodGet, name, "/metrics", "", "")
			require.Equal(t, http.StatusOK, m.Status)
			require.Contains(t, string(m.Body), "grpc_server_started_total")

			resp, err := healthpb.NewHealthClient(f.Conn(t, name)).Check(context.Background(), &healthpb.HealthCheckRequest{})
			require.NoError(t, err)
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
		}
	})
}

func TestSubmitAndReadProposal(t *testing.T) {
	each(t, func(t *testing.T, f *fabrictest.Fabric) {
		t1 := f.Token(t, "t1", auth.RoleProposer)
		t2 := f.Token(t, "t2", auth.RoleProposer)
		post := func(token, body string, headers ...string) fabrictest.Response {
			return f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", token, body, headers...)
		}

		// No token, wrong tenant, malformed JSON, unknown field, bad manifest.
		require.Equal(t, http.StatusUnauthorized, post("", specBody).Status)
		r := post(t2, specBody)
		require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		r = post(t1, `{"tenant_id":"t1","manifest":`)
		require.Equal(t, http.StatusBadRequest, r.Status)
		require.Contains(t, string(r.Body), "message")
		require.Equal(t, http.StatusBadRequest, post(t1, `{"tenant_id":"t1","manifest":{"action":"scale","target":"x"},"bogus":1}`).Status)
		r = post(t1, `{"tenant_id":"t1","manifest":{"action":"scale"}}`)
		require.Equal(t, http.StatusBadRequest, r.Status)
		require.Contains(t, string(r.Body), "manifest.target is required")
		require.Equal(t, http.StatusBadRequest, post(t1, `{"tenant_id":"t1","manifest":{"action":"scale","target":"x","impact":"huge"}}`).Status)

		// P1: personal data without consent is refused and nothing is stored.
		r = post(t1, `{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":{"owner":"jane.doe@example.com"}}}`)
		require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		require.NotContains(t, string(r.Body), "jane.doe")

		// The spec's example body succeeds and reads back.
		r = post(t1, specBody)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		created := decode(t, r)
		require.True(t, created.Created)
		p := created.Proposal
		require.Len(t, p.ID, 26)
		require.Equal(t, "t1", p.TenantID)
		// Submission starts the negotiation and carries the proposal as far as it can
		// go at once: with fast regions it may already be agreed, scored and (the
		// example scales without a count, which cannot be planned: high impact, fail
		// closed) waiting for approval.
		require.Contains(t, []string{"PROPOSAL_STATUS_NEGOTIATING", "PROPOSAL_STATUS_AGREED", "PROPOSAL_STATUS_SCORED", "PROPOSAL_STATUS_PENDING_APPROVAL"},
			p.Status, "submission starts the negotiation")
		require.Equal(t, "high", p.Impact, "a change of unknown size is high impact")
		require.Regexp(t, hex64, p.PreStateSHA256)
		require.Regexp(t, hex64, p.ManifestSHA256)
		require.Len(t, p.TraceID, 32)
		require.Equal(t, "scale", p.Manifest["action"])

		got := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID, t1, "")
		require.Equal(t, http.StatusOK, got.Status)
		require.Equal(t, p.ID, decode(t, got).Proposal.ID)
		require.Equal(t, p.PreStateSHA256, decode(t, got).Proposal.PreStateSHA256)

		// Another tenant cannot tell it exists.
		other := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID, t2, "")
		require.Equal(t, http.StatusNotFound, other.Status)
		missing := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/01ARZ3NDEKTSV4RRFFQ69G5FAV", t1, "")
		require.Equal(t, http.StatusNotFound, missing.Status)
		require.Equal(t, string(missing.Body), string(other.Body), "another tenant's proposal must look exactly like a missing one")

		// Idempotency-Key: the retry returns the same proposal.
		first := decode(t, post(t1, specBody, "Idempotency-Key: retry-1"))
		again := decode(t, post(t1, specBody, "Idempotency-Key: retry-1"))
		require.True(t, first.Created)
		require.False(t, again.Created)
		require.Equal(t, first.Proposal.ID, again.Proposal.ID)

		// High impact defaults to dry run (P3); the same target has the same pre-state.
		high := decode(t, post(t1, `{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX","impact":"high"}}`))
		require.True(t, high.Proposal.DryRun)
		require.Equal(t, p.PreStateSHA256, high.Proposal.PreStateSHA256)

		// Cross-tenant proposals are refused by the default policy (P5).
		r = post(t1, `{"tenant_id":"t1","manifest":{"action":"scale","target":"x","tenant_id":"t2","parameters":{"replicas":3}}}`)
		require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "P5")

		// Listing is tenant-scoped.
		list := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals", t2, "")
		require.Equal(t, http.StatusOK, list.Status)
		require.JSONEq(t, `{"proposals":[]}`, string(list.Body))
	})
}

func TestGRPCAndRESTShareTheChain(t *testing.T) {
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite})
	t1 := f.Token(t, "t1", auth.RoleProposer)
	client := coordinatorv1.NewCoordinatorServiceClient(f.Conn(t, fabric.Coordinator))

	_, err := client.SubmitProposal(context.Background(), &coordinatorv1.SubmitProposalRequest{TenantId: "t1"})
	require.Equal(t, codes.Unauthenticated, status.Code(err))

	ctx := fabrictest.WithToken(context.Background(), t1)
	resp, err := client.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{
		TenantId: "t1", Manifest: &typesv1.Manifest{Action: "scale", Target: "serviceY", Regions: []string{"eu-west", "us-east"}},
	})
	require.NoError(t, err)
	got := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+resp.GetProposal().GetId(), t1, "")
	require.Equal(t, http.StatusOK, got.Status, "a gRPC-created proposal is readable over REST")

	_, err = client.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{TenantId: "t1"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	// Calls that arrived over REST are counted by the gRPC server metrics.
	before := counter(t, f, "SubmitProposal")
	for range 3 {
		f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", t1, specBody)
	}
	require.Equal(t, before+3, counter(t, f, "SubmitProposal"))
}

// counter reads grpc_server_handled_total for a coordinator method with code OK.
func counter(t *testing.T, f *fabrictest.Fabric, method string) int {
	t.Helper()
	body := string(f.Do(t, http.MethodGet, fabric.Coordinator, "/metrics", "", "").Body)
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "grpc_server_handled_total{") && strings.Contains(line, `grpc_method="`+method+`"`) && strings.Contains(line, `grpc_code="OK"`) {
			n, err := strconv.Atoi(line[strings.LastIndex(line, " ")+1:])
			require.NoError(t, err)
			return n
		}
	}
	return 0
}

// The canary runner, the last service built, answers through the gateway like the
// others: authentication first (401 without a token), then the request (an unknown
// proposal is 404, for a dry run and a rollout alike).
func TestCanaryAnswersThroughTheGateway(t *testing.T) {
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite})
	tok := f.Token(t, "t1", auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor)
	for _, c := range []struct{ svc, method, path, body string }{
		{fabric.Canary, http.MethodPost, "/canary/run", `{"proposal_id":"01JAAAAAAAAAAAAAAAAAAAAAAA","dry_run":true}`},
		{fabric.Canary, http.MethodPost, "/canary/run", `{"proposal_id":"01JAAAAAAAAAAAAAAAAAAAAAAA"}`},
		{fabric.Canary, http.MethodGet, "/canary/01JAAAAAAAAAAAAAAAAAAAAAAA/result", ""},
		{fabric.Canary, http.MethodPost, "/canary/01JAAAAAAAAAAAAAAAAAAAAAAA/stop", `{}`},
	} {
		r := f.Do(t, c.method, c.svc, c.path, tok, c.body)
		require.Equal(t, http.StatusNotFound, r.Status, "%s %s: %s", c.method, c.path, r.Body)
		require.Equal(t, http.StatusUnauthorized, f.Do(t, c.method, c.svc, c.path, "", c.body).Status, "auth comes first: %s", c.path)
	}
}

func TestBodyLimit(t *testing.T) {
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite})
	big := `{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":{"blob":"` + strings.Repeat("a", 2<<20) + `"}}}`
	r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", f.Token(t, "t1", auth.RoleProposer), big)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.Status)
}
