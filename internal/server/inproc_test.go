package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
)

// inprocNegotiator answers by the id it is asked about and records the incoming
// metadata of every call, so a test can compare what a handler sees over both paths.
type inprocNegotiator struct {
	negotiatorv1.UnimplementedNegotiatorServiceServer
	mu      sync.Mutex
	seen    []metadata.MD
	entered chan struct{}
	release chan struct{}
	// finished counts the held ("block") calls whose handler has returned.
	finished atomic.Int32
}

func (n *inprocNegotiator) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	n.mu.Lock()
	n.seen = append(n.seen, md.Copy())
	n.mu.Unlock()
}

func (n *inprocNegotiator) takeSeen() []metadata.MD {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.seen
	n.seen = nil
	return out
}

func (n *inprocNegotiator) GetNegotiationStatus(ctx context.Context, req *negotiatorv1.GetNegotiationStatusRequest) (*negotiatorv1.GetNegotiationStatusResponse, error) {
	n.record(ctx)
	id := req.GetId()
	switch id {
	case "block":
		n.entered <- struct{}{}
		<-n.release
		defer n.finished.Add(1)
	case "missing":
		st, _ := status.New(codes.NotFound, "negotiation missing not found").
			WithDetails(&errdetails.ResourceInfo{ResourceType: "negotiation", ResourceName: id})
		return nil, st.Err()
	case "panic":
		panic("boom")
	case "driver":
		return nil, errors.New("pq: connection to 10.1.2.3 refused")
	}
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-head", "h-"+id))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trail", "t-"+id))
	req.Id = "changed by the handler" // the caller's message must not change with it
	return &negotiatorv1.GetNegotiationStatusResponse{Negotiation: &negotiatorv1.Negotiation{Id: id, TenantId: tenant, Round: 3}}, nil
}

func (n *inprocNegotiator) WatchNegotiation(req *negotiatorv1.WatchNegotiationRequest, ss grpc.ServerStreamingServer[negotiatorv1.WatchNegotiationResponse]) error {
	n.record(ss.Context())
	if err := ss.SetHeader(metadata.Pairs("x-head", "stream")); err != nil {
		return err
	}
	for i := range 3 {
		if req.GetId() == "fail" && i == 1 {
			return status.Error(codes.FailedPrecondition, "negotiation fail ended badly")
		}
		if err := ss.Send(&negotiatorv1.WatchNegotiationResponse{Negotiation: &negotiatorv1.Negotiation{Id: req.GetId(), Round: int32(i)}}); err != nil {
			return err
		}
	}
	ss.SetTrailer(metadata.Pairs("x-trail", "stream"))
	return nil
}

type inprocHarness struct {
	srv    *Server
	neg    *inprocNegotiator
	reg    *prometheus.Registry
	logs   *inprocLogs
	signer *auth.Signer
	mu     sync.Mutex
	tokens map[string]string
}

// inprocLogs is a log sink safe for concurrent writes.
type inprocLogs struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	discard bool // benchmarks keep no logs
}

func (l *inprocLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.discard {
		return len(p), nil
	}
	return l.buf.Write(p)
}

func (l *inprocLogs) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf.Reset()
	return s
}

// inprocStart serves the fake negotiator with one request slot and no queue (so a
// second concurrent call is refused by admission, deterministically).
func inprocStart(t testing.TB) *inprocHarness {
	t.Helper()
	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	v, err := auth.NewVerifier(key.Public(), "i", "a")
	require.NoError(t, err)
	neg := &inprocNegotiator{entered: make(chan struct{}, 10), release: make(chan struct{}, 10)}
	m := func(name string) string {
		return "/" + negotiatorv1.NegotiatorService_ServiceDesc.ServiceName + "/" + name
	}
	adm := config.DefaultAdmission()
	adm.MaxInFlight, adm.MaxQueue, adm.RetryAfter = 1, 0, config.Duration(2*time.Second)
	reg := prometheus.NewRegistry()
	logs := &inprocLogs{}
	s, err := New(context.Background(), Service{
		Name:     "test",
		Register: func(g grpc.ServiceRegistrar) { negotiatorv1.RegisterNegotiatorServiceServer(g, neg) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return negotiatorv1.RegisterNegotiatorServiceHandlerClient(ctx, mux, negotiatorv1.NewNegotiatorServiceClient(conn))
		},
		Policy: auth.Policy{m("GetNegotiationStatus"): {auth.RoleProposer}, m("WatchNegotiation"): {auth.RoleProposer}},
		Validators: Validators{
			m("GetNegotiationStatus"): func(req any) error {
				if req.(*negotiatorv1.GetNegotiationStatusRequest).GetId() == "" {
					return errors.New("id is required")
				}
				return nil
			},
			m("WatchNegotiation"): func(req any) error {
				if req.(*negotiatorv1.WatchNegotiationRequest).GetId() == "" {
					return errors.New("id is required")
				}
				return nil
			},
		},
	}, Options{
		Listen:          config.Listen{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"},
		Logger:          slog.New(slog.NewJSONHandler(logs, nil)),
		Verifier:        v,
		MaxRequestBytes: 4096,
		ShutdownTimeout: 2 * time.Second,
		Admission:       adm,
		Registry:        reg,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return &inprocHarness{srv: s, neg: neg, reg: reg, logs: logs, signer: auth.NewSigner(key, "i", "a")}
}

// token mints a token once per tenant and roles (the same token on every path: one
// minted a second later would differ in its times).
func (h *inprocHarness) token(t testing.TB, tenant string, roles ...string) string {
	t.Helper()
	key := tenant + "/" + strings.Join(roles, ",")
	h.mu.Lock()
	defer h.mu.Unlock()
	if tok, ok := h.tokens[key]; ok {
		return tok
	}
	tok, err := h.signer.Mint("s", tenant, roles, time.Hour)
	require.NoError(t, err)
	if h.tokens == nil {
		h.tokens = map[string]string{}
	}
	h.tokens[key] = tok
	return tok
}

// inprocOutcome is everything a caller and the service can observe of one call.
type inprocOutcome struct {
	Responses []string // protojson of each response message
	Code      codes.Code
	Message   string
	Details   []string // protojson of each status detail
	Header    metadata.MD
	Trailer   metadata.MD
	Seen      []metadata.MD // incoming metadata the handler saw (without the transport's own keys)
}

// inprocTransportKeys are the keys a gRPC transport adds to the metadata by itself
// (HTTP/2 pseudo-header, content type, the client library's user agent, the wire form
// of a status's details in the trailer) in requests and responses: they describe the
// transport, not the call (the details themselves are compared as Details), and an
// in-process call has none.
var inprocTransportKeys = []string{":authority", "content-type", "user-agent", "grpc-accept-encoding", "grpc-status-details-bin"}

func inprocWithoutTransport(mds []metadata.MD) []metadata.MD {
	out := make([]metadata.MD, 0, len(mds))
	for _, md := range mds {
		md = md.Copy()
		for _, k := range inprocTransportKeys {
			delete(md, k)
		}
		out = append(out, md)
	}
	return out
}

func inprocWithoutTransport1(md metadata.MD) metadata.MD {
	if md = inprocWithoutTransport([]metadata.MD{md})[0]; len(md) == 0 {
		return nil // no header and an empty one look the same to a caller
	}
	return md
}

func inprocDetails(t testing.TB, err error) []string {
	t.Helper()
	var out []string
	for _, d := range status.Convert(err).Proto().GetDetails() {
		out = append(out, string(d.GetTypeUrl())+" "+string(d.GetValue()))
	}
	return out
}

func inprocJSON(t testing.TB, m proto.Message) string {
	t.Helper()
	b, err := protojson.Marshal(m)
	require.NoError(t, err)
	var v any // protojson's spacing varies on purpose: re-encode it stably
	require.NoError(t, json.Unmarshal(b, &v))
	b, err = json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// inprocCalls sends the same requests over conn and returns what came out of each:
// successes, a validation error, missing and bad tokens, a wrong role, a NOT_FOUND
// with details, a panic, a driver error, a message over the size limit, an admission
// refusal (with RetryInfo and the retry-after header), and streams that end well and
// badly.
func (h *inprocHarness) inprocCalls(t *testing.T, conn grpc.ClientConnInterface) map[string]inprocOutcome {
	t.Helper()
	client := negotiatorv1.NewNegotiatorServiceClient(conn)
	good := h.token(t, "t1", auth.RoleProposer)
	md := func(tok string) context.Context {
		kv := []string{"idempotency-key", "k-1", "x-forwarded-for", "203.0.113.7", "grpcgateway-user-agent", "curl/8"}
		if tok != "" {
			kv = append(kv, "authorization", "Bearer "+tok)
		}
		return metadata.AppendToOutgoingContext(context.Background(), kv...)
	}
	out := map[string]inprocOutcome{}
	unary := func(name string, ctx context.Context, id string) {
		req := &negotiatorv1.GetNegotiationStatusRequest{Id: id}
		var o inprocOutcome
		resp, err := client.GetNegotiationStatus(ctx, req, grpc.Header(&o.Header), grpc.Trailer(&o.Trailer))
		require.Equal(t, id, req.GetId(), "%s: the handler changed the caller's request", name)
		if err == nil {
			o.Responses = append(o.Responses, inprocJSON(t, resp))
		}
		o.Code, o.Message, o.Details = status.Code(err), status.Convert(err).Message(), inprocDetails(t, err)
		o.Header, o.Trailer = inprocWithoutTransport1(o.Header), inprocWithoutTransport1(o.Trailer)
		o.Seen = inprocWithoutTransport(h.neg.takeSeen())
		out[name] = o
	}
	stream := func(name string, ctx context.Context, id string) {
		var o inprocOutcome
		s, err := client.WatchNegotiation(ctx, &negotiatorv1.WatchNegotiationRequest{Id: id})
		for err == nil {
			var msg *negotiatorv1.WatchNegotiationResponse
			if msg, err = s.Recv(); err == nil {
				o.Responses = append(o.Responses, inprocJSON(t, msg))
			}
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		if s != nil {
			o.Header, _ = s.Header()
			o.Trailer = s.Trailer()
		}
		o.Header, o.Trailer = inprocWithoutTransport1(o.Header), inprocWithoutTransport1(o.Trailer)
		o.Code, o.Message, o.Details = status.Code(err), status.Convert(err).Message(), inprocDetails(t, err)
		o.Seen = inprocWithoutTransport(h.neg.takeSeen())
		out[name] = o
	}

	unary("ok", md(good), "n1")
	unary("validation", md(good), "")
	unary("no token", md(""), "n1")
	unary("bad token", md("not-a-jwt"), "n1")
	unary("wrong role", md(h.token(t, "t1", auth.RoleAuditor)), "n1")
	unary("not found with details", md(good), "missing")
	unary("panic", md(good), "panic")
	unary("driver error", md(good), "driver")
	unary("too large", md(good), strings.Repeat("x", 5000))
	stream("stream", md(good), "w1")
	stream("stream error", md(good), "fail")
	stream("stream validation", md(good), "")
	stream("stream no token", md(""), "w1")

	// Admission: one slot, no queue. Hold the slot, then call again.
	held := make(chan struct{})
	go func() { defer close(held); unary("held", md(good), "block") }()
	<-h.neg.entered
	var refused inprocOutcome
	_, err := client.GetNegotiationStatus(md(good), &negotiatorv1.GetNegotiationStatusRequest{Id: "n2"}, grpc.Header(&refused.Header), grpc.Trailer(&refused.Trailer))
	refused.Code, refused.Message, refused.Details = status.Code(err), status.Convert(err).Message(), inprocDetails(t, err)
	refused.Header, refused.Trailer = inprocWithoutTransport1(refused.Header), inprocWithoutTransport1(refused.Trailer)
	h.neg.release <- struct{}{}
	<-held
	out["admission refusal"] = refused
	return out
}

// inprocCounters are the service's counters and histogram counts, by series.
func (h *inprocHarness) inprocCounters(t testing.TB) map[string]float64 {
	t.Helper()
	fams, err := h.reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func inprocDelta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// inprocLogLines are the call log lines, without what differs between any two runs
// (times, the peer's address).
func inprocLogLines(t testing.TB, raw string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["msg"] == "listening" { // Serve's start, whenever it comes
			continue
		}
		for _, k := range []string{"time", "grpc.start_time", "grpc.time_ms", "peer.address", "grpc.request.deadline", "stack"} {
			delete(m, k)
		}
		b, err := json.Marshal(m)
		require.NoError(t, err)
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

// The in-process connection gives the same answers, errors (codes, messages, details),
// headers, trailers, metadata seen by the handler, metric increments and log lines as
// a call over the gRPC listener, for the same requests.
func TestInprocAnswersAsTheNetworkDoes(t *testing.T) {
	t.Parallel()
	h := inprocStart(t)
	network, err := grpc.NewClient(h.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { network.Close() })

	type run struct {
		calls   map[string]inprocOutcome
		metrics map[string]float64
		logs    []string
	}
	runs := map[string]run{}
	h.logs.take()
	for _, path := range []struct {
		name string
		conn grpc.ClientConnInterface
	}{{"network", network}, {"in-process", h.srv.Local()}} {
		before := h.inprocCounters(t)
		calls := h.inprocCalls(t, path.conn)
		runs[path.name] = run{calls: calls, metrics: inprocDelta(before, h.inprocCounters(t)), logs: inprocLogLines(t, h.logs.take())}
	}
	net, local := runs["network"], runs["in-process"]
	require.Len(t, local.calls, len(net.calls))
	for name, want := range net.calls {
		require.Equal(t, want, local.calls[name], name)
	}
	require.Equal(t, net.metrics, local.metrics, "the same metric increments")
	require.Equal(t, net.logs, local.logs, "the same log lines")

	// The cases are what they claim to be (so the comparison is not of two empty runs).
	c := local.calls
	require.Equal(t, codes.OK, c["ok"].Code)
	require.Equal(t, []string{`{"negotiation":{"id":"n1","round":3,"tenantId":"t1"}}`}, c["ok"].Responses)
	require.Equal(t, []string{"h-n1"}, c["ok"].Header.Get("x-head"))
	require.Equal(t, []string{"t-n1"}, c["ok"].Trailer.Get("x-trail"))
	seen := c["ok"].Seen
	require.Len(t, seen, 1)
	for k, v := range map[string]string{"authorization": "Bearer ", "idempotency-key": "k-1", "x-forwarded-for": "203.0.113.7", "grpcgateway-user-agent": "curl/8"} {
		require.Len(t, seen[0].Get(k), 1, k)
		require.True(t, strings.HasPrefix(seen[0].Get(k)[0], v), k)
	}
	require.Equal(t, codes.InvalidArgument, c["validation"].Code)
	require.Equal(t, codes.Unauthenticated, c["no token"].Code)
	require.Equal(t, codes.Unauthenticated, c["bad token"].Code)
	require.Equal(t, codes.PermissionDenied, c["wrong role"].Code)
	require.Equal(t, codes.NotFound, c["not found with details"].Code)
	require.Len(t, c["not found with details"].Details, 1)
	require.Equal(t, codes.Internal, c["panic"].Code)
	require.Equal(t, "internal error", c["driver error"].Message)
	require.Equal(t, codes.ResourceExhausted, c["too large"].Code)
	require.Equal(t, codes.OK, c["stream"].Code)
	require.Len(t, c["stream"].Responses, 3)
	require.Equal(t, []string{"stream"}, c["stream"].Trailer.Get("x-trail"))
	require.Equal(t, codes.FailedPrecondition, c["stream error"].Code)
	require.Len(t, c["stream error"].Responses, 1)
	require.Equal(t, codes.InvalidArgument, c["stream validation"].Code)
	require.Equal(t, codes.Unauthenticated, c["stream no token"].Code)
	require.Equal(t, codes.OK, c["held"].Code)
	require.Equal(t, codes.Unavailable, c["admission refusal"].Code)
	require.Equal(t, []string{"2"}, c["admission refusal"].Header.Get("retry-after"))
	require.Len(t, c["admission refusal"].Details, 1)
	require.Contains(t, c["admission refusal"].Details[0], "RetryInfo")
	require.NotEmpty(t, local.metrics)
	require.Contains(t, local.metrics, `grpc_server_handled_total{grpc_code=OK,grpc_method=GetNegotiationStatus,grpc_service=decisionfabric.negotiator.v1.NegotiatorService,grpc_type=unary}`)
	require.NotEmpty(t, local.logs)
}

// A REST call reaches the handler in-process with the metadata the gateway makes of
// the HTTP request: the token, Idempotency-Key, X-Forwarded-* and grpcgateway-*.
func TestInprocGatewayMetadata(t *testing.T) {
	t.Parallel()
	h := inprocStart(t)
	req, err := http.NewRequest(http.MethodGet, "http://"+h.srv.HTTPAddr()+"/negotiate/n1/status", nil)
	require.NoError(t, err)
	tok := h.token(t, "t1", auth.RoleProposer)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Idempotency-Key", "k-9")
	req.Header.Set("User-Agent", "inproc-test")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "h-n1", resp.Header.Get("Grpc-Metadata-X-Head"), "response headers are mapped")
	seen := h.neg.takeSeen()
	require.Len(t, seen, 1)
	md := seen[0]
	require.Equal(t, []string{"Bearer " + tok}, md.Get("authorization"))
	require.Equal(t, []string{"k-9"}, md.Get("idempotency-key"))
	require.Equal(t, []string{"inproc-test"}, md.Get("grpcgateway-user-agent"))
	require.NotEmpty(t, md.Get("x-forwarded-for"))
	require.NotEmpty(t, md.Get("x-forwarded-host"))
	for _, k := range inprocTransportKeys {
		require.Empty(t, md.Get(k), "no transport, so none of its keys: %s", k)
	}
}

// Messages are copied both ways: the handler's request is not the caller's, and the
// caller's response is not the handler's.
func TestInprocIsolatesMessages(t *testing.T) {
	t.Parallel()
	h := inprocStart(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+h.token(t, "t1", auth.RoleProposer))
	req := &negotiatorv1.GetNegotiationStatusRequest{Id: "n7"}
	resp, err := negotiatorv1.NewNegotiatorServiceClient(h.srv.Local()).GetNegotiationStatus(ctx, req)
	require.NoError(t, err)
	require.Equal(t, "n7", req.GetId(), "the handler set its request's id; the caller's did not change")
	require.Equal(t, "n7", resp.GetNegotiation().GetId())
}

// Once the server stops, in-process calls are refused as a closed connection would be.
func TestInprocRefusedAfterStop(t *testing.T) {
	t.Parallel()
	h := inprocStart(t)
	h.srv.Stop()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+h.token(t, "t1", auth.RoleProposer))
	client := negotiatorv1.NewNegotiatorServiceClient(h.srv.Local())
	_, err := client.GetNegotiationStatus(ctx, &negotiatorv1.GetNegotiationStatusRequest{Id: "n1"})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	s, err := client.WatchNegotiation(ctx, &negotiatorv1.WatchNegotiationRequest{Id: "n1"})
	if err == nil {
		_, err = s.Recv()
	}
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Empty(t, h.neg.takeSeen(), "no handler ran")
}

// A call that passed the connection's check just before the server began to stop is
// refused by the transport interceptor (the connection's check alone would let it run
// after Stop): calling the channel directly, behind that check, is refused too.
func TestInprocTransportRefusesAfterStop(t *testing.T) {
	t.Parallel()
	h := inprocStart(t)
	h.srv.Stop()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+h.token(t, "t1", auth.RoleProposer))
	client := negotiatorv1.NewNegotiatorServiceClient(h.srv.local.ch)
	_, err := client.GetNegotiationStatus(ctx, &negotiatorv1.GetNegotiationStatusRequest{Id: "n1"})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Empty(t, h.neg.takeSeen(), "no handler ran")
}

// Stop waits for in-flight in-process calls before it returns (and so before the
// service's resources are closed).
func TestInprocStopWaitsForCallsInFlight(t *testing.T) {
	t.Parallel()
	h := inprocStart(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+h.token(t, "t1", auth.RoleProposer))
	client := negotiatorv1.NewNegotiatorServiceClient(h.srv.Local())
	done := make(chan error, 1)
	go func() {
		_, err := client.GetNegotiationStatus(ctx, &negotiatorv1.GetNegotiationStatusRequest{Id: "block"})
		done <- err
	}()
	<-h.neg.entered
	// The handler's return, not the caller's receipt of the answer (which may come
	// after Stop returns), is what Stop waits for.
	stopped := make(chan bool, 1)
	go func() { h.srv.Stop(); stopped <- h.neg.finished.Load() == 1 }()
	// Release the held call only once the server refuses new calls (it is stopping).
	for {
		_, err := client.GetNegotiationStatus(ctx, &negotiatorv1.GetNegotiationStatusRequest{Id: "n1"})
		if status.Code(err) == codes.Unavailable && strings.Contains(status.Convert(err).Message(), "shutting down") {
			break
		}
		goruntime.Gosched()
	}
	h.neg.release <- struct{}{}
	require.NoError(t, <-done)
	require.True(t, <-stopped, "Stop returned before the call in flight had finished")
}
