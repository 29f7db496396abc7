package integration

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// inprocPath is one way of reaching the services: their gRPC listeners, or the
// in-process connections peers in the same process use.
type inprocPath struct {
	name                   string
	coord, neg, auditorCon grpc.ClientConnInterface
}

var (
	inprocTime  = regexp.MustCompile(`"\d{4}-\d\d-\d\dT[0-9:.]+Z"`)
	inprocTrace = regexp.MustCompile(`"[0-9a-f]{32}"`)
	inprocHash  = regexp.MustCompile(`"[0-9a-f]{64}"`)
	inprocULID  = regexp.MustCompile(`"[0-9A-HJKMNP-TV-Z]{26}"`)
)

// inprocNormal is m as JSON with what differs between two equal requests replaced:
// the proposal's id, times and trace ids (and, for audit entries, the chain hashes,
// which cover those).
func inprocNormal(t *testing.T, m proto.Message, id string, hashes bool) string {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	require.NoError(t, err)
	s := string(b)
	if id != "" {
		s = strings.ReplaceAll(s, id, "<id>")
	}
	s = inprocTime.ReplaceAllString(s, `"<time>"`)
	s = inprocTrace.ReplaceAllString(s, `"<trace>"`)
	s = inprocULID.ReplaceAllString(s, `"<ulid>"`) // e.g. the negotiation's id
	if hashes {
		s = inprocHash.ReplaceAllString(s, `"<hash>"`)
	}
	return s
}

type inprocResult struct {
	Answer  string
	Code    codes.Code
	Message string
	Details []string
}

func inprocResultOf(t *testing.T, m proto.Message, err error, id string) inprocResult {
	t.Helper()
	r := inprocResult{Code: status.Code(err), Message: strings.ReplaceAll(status.Convert(err).Message(), id, "<id>")}
	if err == nil {
		r.Answer = inprocNormal(t, m, id, false)
	}
	for _, d := range status.Convert(err).Proto().GetDetails() {
		r.Details = append(r.Details, d.GetTypeUrl()+" "+string(d.GetValue()))
	}
	return r
}

// inprocCalls sends the same requests over p and returns what came back, by case, and
// the audit entries the submission wrote.
func inprocCalls(t *testing.T, f *fabrictest.Fabric, p inprocPath) (map[string]inprocResult, []string) {
	t.Helper()
	coord := coordinatorv1.NewCoordinatorServiceClient(p.coord)
	neg := negotiatorv1.NewNegotiatorServiceClient(p.neg)
	aud := auditorv1.NewAuditorServiceClient(p.auditorCon)
	t1 := fabrictest.WithToken(context.Background(), f.Token(t, "t1", auth.RoleProposer))
	t2 := fabrictest.WithToken(context.Background(), f.Token(t, "t2", auth.RoleProposer))
	params, err := structpb.NewStruct(map[string]any{"replicas": 3})
	require.NoError(t, err)
	submit := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: &typesv1.Manifest{
		Action: "scale", Target: "serviceX", Regions: []string{"eu-west", "us-east"}, Parameters: params}}
	// The same Idempotency-Key on both paths would return the first path's proposal.
	keyed := metadata.AppendToOutgoingContext(t1, "idempotency-key", "inproc-"+strings.ReplaceAll(p.name, " ", "-"))

	out := map[string]inprocResult{}
	resp, err := coord.SubmitProposal(keyed, submit)
	require.NoError(t, err, p.name)
	id := resp.GetProposal().GetId()
	out["submit"] = inprocResultOf(t, resp, err, id)
	// A retry answers the same proposal, not created again (its state may have moved
	// on meanwhile, differently on each path: only that is compared).
	resp, err = coord.SubmitProposal(keyed, submit)
	out["submit again, same key"] = inprocResultOf(t, &coordinatorv1.SubmitProposalResponse{
		Proposal: &coordinatorv1.Proposal{Id: resp.GetProposal().GetId()}, Created: resp.GetCreated()}, err, id)
	resp, err = coord.SubmitProposal(t1, &coordinatorv1.SubmitProposalRequest{TenantId: "t1"})
	out["validation"] = inprocResultOf(t, resp, err, id)
	resp, err = coord.SubmitProposal(context.Background(), submit)
	out["no token"] = inprocResultOf(t, resp, err, id)
	resp, err = coord.SubmitProposal(t2, submit)
	out["another tenant's id in the request"] = inprocResultOf(t, resp, err, id)
	got, err := coord.GetProposal(t2, &coordinatorv1.GetProposalRequest{Id: id})
	out["another tenant's proposal"] = inprocResultOf(t, got, err, id)
	st, err := neg.GetNegotiationStatus(t1, &negotiatorv1.GetNegotiationStatusRequest{Id: "01JD3Q0Z9M8K7B6V5C4X3W2Y1T"})
	out["negotiation not found"] = inprocResultOf(t, st, err, id)
	stream, err := neg.WatchNegotiation(t1, &negotiatorv1.WatchNegotiationRequest{Id: "01JD3Q0Z9M8K7B6V5C4X3W2Y1T"})
	for err == nil {
		_, err = stream.Recv()
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	out["watch negotiation not found"] = inprocResultOf(t, nil, err, id)

	// The submission's audit entries reach the auditor through the coordinator's
	// outbox, in the background: wait for them.
	auditor := fabrictest.WithToken(context.Background(), f.Token(t, "t1", auth.RoleAuditor))
	var entries []string
	for deadline := time.Now().Add(60 * time.Second); ; {
		trail, err := aud.GetAuditTrail(auditor, &auditorv1.GetAuditTrailRequest{ProposalId: id})
		require.NoError(t, err)
		entries = entries[:0]
		for _, e := range trail.GetEntries() {
			if e.GetEvent() == "proposal.submitted" || strings.HasPrefix(e.GetIdempotencyKey(), "snapshot:") {
				e = proto.CloneOf(e)
				e.Index, e.PrevHash, e.InclusionProof = 0, "", nil // its place in the tenant's log
				entries = append(entries, inprocNormal(t, e, id, true))
			}
		}
		if len(entries) >= 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the submission's audit entries never arrived: %v", entries)
		time.Sleep(20 * time.Millisecond)
	}
	sort.Strings(entries)
	return out, entries
}

// inprocCounters reads a service's grpc_server_* counters from GET /metrics, by series.
func inprocCounters(t *testing.T, f *fabrictest.Fabric, service string) map[string]float64 {
	t.Helper()
	body := string(f.Do(t, http.MethodGet, service, "/metrics", "", "").Body)
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "grpc_server_handled_total{") && !strings.HasPrefix(line, "grpc_server_started_total{") &&
			!strings.HasPrefix(line, "grpc_server_msg_") {
			continue
		}
		i := strings.LastIndex(line, " ")
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

func inprocDelta(before, after map[string]float64, keep func(series string) bool) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 && keep(k) {
			out[k] = d
		}
	}
	return out
}

// The coordinator, negotiator and auditor answer the same requests the same way over
// their gRPC listeners and over the in-process connections the all-in-one process
// uses (the REST gateway's and the peers'): same answers (up to ids, times and trace
// ids), codes, messages and details, the same metric increments and the same audit
// entries, on both stores.
func TestInprocAnswersAsTheListenerDoes(t *testing.T) {
	storesOnly(t, func(t *testing.T, st fabrictest.Store) {
		f := allInOne(t, st, fabrictest.Options{})
		type run struct {
			calls   map[string]inprocResult
			audit   []string
			metrics map[string]float64
		}
		runs := map[string]run{}
		for _, p := range []inprocPath{
			{"listener", f.Conn(t, fabric.Coordinator), f.Conn(t, fabric.Negotiator), f.Conn(t, fabric.Auditor)},
			{"in process", f.Local(t, fabric.Coordinator), f.Local(t, fabric.Negotiator), f.Local(t, fabric.Auditor)},
		} {
			coordBefore, negBefore := inprocCounters(t, f, fabric.Coordinator), inprocCounters(t, f, fabric.Negotiator)
			calls, audit := inprocCalls(t, f, p)
			// The coordinator is called only by this test; the negotiator also by the
			// coordinator in the background, but never about unknown negotiations.
			metrics := inprocDelta(coordBefore, inprocCounters(t, f, fabric.Coordinator), func(string) bool { return true })
			for k, v := range inprocDelta(negBefore, inprocCounters(t, f, fabric.Negotiator), func(k string) bool {
				return strings.Contains(k, `grpc_code="NotFound"`)
			}) {
				metrics["negotiator "+k] = v
			}
			runs[p.name] = run{calls: calls, audit: audit, metrics: metrics}
		}
		listener, local := runs["listener"], runs["in process"]
		require.Len(t, local.calls, len(listener.calls))
		for name, want := range listener.calls {
			require.Equal(t, want, local.calls[name], name)
		}
		require.Equal(t, listener.audit, local.audit, "the same audit entries")
		require.Equal(t, listener.metrics, local.metrics, "the same metric increments")

		// The cases are what they claim to be.
		c := local.calls
		require.Equal(t, codes.OK, c["submit"].Code)
		require.Contains(t, c["submit"].Answer, `"created":true`)
		require.Contains(t, c["submit again, same key"].Answer, `"id":"<id>"`)
		require.NotContains(t, c["submit again, same key"].Answer, `"created":true`)
		require.Equal(t, codes.InvalidArgument, c["validation"].Code)
		require.Equal(t, codes.Unauthenticated, c["no token"].Code)
		require.Equal(t, codes.PermissionDenied, c["another tenant's id in the request"].Code)
		require.Equal(t, codes.NotFound, c["another tenant's proposal"].Code)
		require.Equal(t, codes.NotFound, c["negotiation not found"].Code)
		require.Equal(t, codes.NotFound, c["watch negotiation not found"].Code)
		require.Len(t, local.audit, 2)
		require.Contains(t, local.metrics, `grpc_server_handled_total{grpc_code="NotFound",grpc_method="GetProposal",grpc_service="decisionfabric.coordinator.v1.CoordinatorService",grpc_type="unary"}`)
		require.Contains(t, local.metrics, `negotiator grpc_server_handled_total{grpc_code="NotFound",grpc_method="WatchNegotiation",grpc_service="decisionfabric.negotiator.v1.NegotiatorService",grpc_type="server_stream"}`)
	})
}
