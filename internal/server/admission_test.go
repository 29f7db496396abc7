package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/admission"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
)

// blockingScorer holds every call until release is closed, counting the calls that
// reached it.
type blockingScorer struct {
	scorerv1.UnimplementedScorerServiceServer
	entered chan struct{}
	release chan struct{}
}

func (b *blockingScorer) Score(ctx context.Context, _ *scorerv1.ScoreRequest) (*scorerv1.ScoreResponse, error) {
	b.entered <- struct{}{}
	<-b.release
	return &scorerv1.ScoreResponse{Confidence: 1}, nil
}

type admissionHarness struct {
	srv    *Server
	scorer *blockingScorer
	signer *auth.Signer
}

func startAdmission(t *testing.T, adm config.Admission, shared ...*admission.RedisStore) *admissionHarness {
	t.Helper()
	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	v, err := auth.NewVerifier(key.Public(), "i", "a")
	require.NoError(t, err)
	b := &blockingScorer{entered: make(chan struct{}, 100), release: make(chan struct{})}
	method := "/" + scorerv1.ScorerService_ServiceDesc.ServiceName + "/Score"
	s, err := New(context.Background(), Service{
		Name:     "test",
		Register: func(g grpc.ServiceRegistrar) { scorerv1.RegisterScorerServiceServer(g, b) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return scorerv1.RegisterScorerServiceHandlerClient(ctx, mux, scorerv1.NewScorerServiceClient(conn))
		},
		Policy: auth.Policy{method: {auth.RoleProposer}},
	}, Options{
		Listen:          config.Listen{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"},
		Logger:          slog.New(slog.DiscardHandler),
		Verifier:        v,
		MaxRequestBytes: 4096,
		ShutdownTimeout: 2 * time.Second,
		Admission:       adm,
		SharedQuota:     sharedStore(shared),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		select {
		case <-b.release:
		default:
			close(b.release)
		}
		cancel()
		require.NoError(t, <-done)
	})
	return &admissionHarness{srv: s, scorer: b, signer: auth.NewSigner(key, "i", "a")}
}

func sharedStore(s []*admission.RedisStore) *admission.RedisStore {
	if len(s) == 0 {
		return nil
	}
	return s[0]
}

func (h *admissionHarness) token(t *testing.T, tenant string) string {
	t.Helper()
	tok, err := h.signer.Mint("s", tenant, []string{auth.RoleProposer}, time.Hour)
	require.NoError(t, err)
	return tok
}

func (h *admissionHarness) post(t *testing.T, tenant string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+h.srv.HTTPAddr()+"/score", strings.NewReader(`{"proposal_id":"p1"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+h.token(t, tenant))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// postAsync sends a request that will hold a slot, and waits until it does.
func (h *admissionHarness) postAsync(t *testing.T, tenant string) <-chan *http.Response {
	t.Helper()
	out := make(chan *http.Response, 1)
	go func() { out <- h.post(t, tenant) }()
	<-h.scorer.entered
	return out
}

func (h *admissionHarness) health(t *testing.T) (int, HealthReport) {
	t.Helper()
	resp, err := http.Get("http://" + h.srv.HTTPAddr() + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	var rep HealthReport
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
	return resp.StatusCode, rep
}

// Beyond the service's slots and queue, REST answers 503 with Retry-After at once, and
// /health says degraded (still 200: the service answers). gRPC callers get UNAVAILABLE
// and a retry-after header.
func TestOverloadAnswers503WithRetryAfter(t *testing.T) {
	t.Parallel()
	adm := config.DefaultAdmission()
	adm.MaxInFlight, adm.MaxQueue, adm.RetryAfter = 1, 0, config.Duration(2*time.Second)
	h := startAdmission(t, adm)
	code, rep := h.health(t)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", rep.Status)

	first := h.postAsync(t, "t1")
	resp := h.post(t, "t2")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "2", resp.Header.Get("Retry-After"))

	// Over gRPC, bypassing the REST guard: the interceptor refuses after auth.
	conn, err := grpc.NewClient(h.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	var header metadata.MD
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+h.token(t, "t3"))
	_, err = scorerv1.NewScorerServiceClient(conn).Score(ctx, &scorerv1.ScoreRequest{ProposalId: "p1"}, grpc.Header(&header))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Equal(t, []string{"2"}, header.Get(admission.RetryAfterKey))

	code, rep = h.health(t)
	require.Equal(t, http.StatusOK, code, "overload degrades, it does not fail the health check")
	require.Equal(t, "degraded", rep.Status)
	require.Len(t, rep.Reasons, 1)
	require.Contains(t, rep.Reasons[0], "overloaded")

	close(h.scorer.release)
	require.Equal(t, http.StatusOK, (<-first).StatusCode)
	require.Len(t, h.scorer.entered, 0, "no refused request reached the handler")
}

// A tenant beyond its quota gets 429 with Retry-After through the gateway; another
// tenant is still served.
func TestTenantQuotaAnswers429WithRetryAfter(t *testing.T) {
	t.Parallel()
	adm := config.DefaultAdmission()
	adm.Tenant = config.TenantQuota{Rate: 0.25, Burst: 1}
	h := startAdmission(t, adm)
	close(h.scorer.release)
	require.Equal(t, http.StatusOK, h.post(t, "greedy").StatusCode)
	<-h.scorer.entered
	resp := h.post(t, "greedy")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	secs := resp.Header.Get("Retry-After")
	require.Contains(t, []string{"3", "4"}, secs, "one token every 4s, less the time since the first")
	require.Equal(t, http.StatusOK, h.post(t, "polite").StatusCode)
	<-h.scorer.entered
	_, rep := h.health(t)
	require.Equal(t, "ok", rep.Status, "a tenant over its quota does not degrade the service")
}

// A request that waited its longest wait in the queue gets 503 through the gateway,
// with Retry-After mapped from the gRPC refusal.
func TestQueueTimeoutAnswers503ThroughTheGateway(t *testing.T) {
	t.Parallel()
	adm := config.DefaultAdmission()
	adm.MaxInFlight, adm.MaxQueue, adm.MaxWait, adm.RetryAfter = 1, 1, config.Duration(20*time.Millisecond), config.Duration(5*time.Second)
	h := startAdmission(t, adm)
	first := h.postAsync(t, "t1")
	resp := h.post(t, "t2")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "5", resp.Header.Get("Retry-After"))
	close(h.scorer.release)
	require.Equal(t, http.StatusOK, (<-first).StatusCode)
}

func TestHTTPStatusOfRefusals(t *testing.T) {
	t.Parallel()
	require.Equal(t, http.StatusTooManyRequests, HTTPStatus(codes.ResourceExhausted))
	require.Equal(t, http.StatusServiceUnavailable, HTTPStatus(codes.Unavailable))
}
