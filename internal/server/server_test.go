package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"google.golang.org/grpc/status"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
)

// fakeScorer behaves according to the proposal id it is asked about.
type fakeScorer struct {
	scorerv1.UnimplementedScorerServiceServer
}

func (fakeScorer) Score(ctx context.Context, req *scorerv1.ScoreRequest) (*scorerv1.ScoreResponse, error) {
	switch req.GetProposalId() {
	case "panic":
		panic("boom with secret password=hunter2")
	case "driver":
		return nil, errors.New("pq: connection to 10.1.2.3 refused")
	case "conflict":
		return nil, status.Error(codes.FailedPrecondition, "not in a state that allows this")
	}
	if strings.HasPrefix(req.GetProposalId(), "echo") {
		// A handler that quotes its input in full, as no handler should.
		return nil, status.Errorf(codes.InvalidArgument, "proposal_id %q is not valid", req.GetProposalId())
	}
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	return &scorerv1.ScoreResponse{Confidence: 0.5, Explanation: "for " + tenant}, nil
}

type harness struct {
	srv   *Server
	token string
	logs  *bytes.Buffer
}

func start(t *testing.T) *harness {
	t.Helper()
	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	v, err := auth.NewVerifier(key.Public(), "i", "a")
	require.NoError(t, err)
	tok, err := auth.NewSigner(key, "i", "a").Mint("s", "t1", []string{auth.RoleProposer}, time.Hour)
	require.NoError(t, err)
	logs := &bytes.Buffer{}
	method := "/" + scorerv1.ScorerService_ServiceDesc.ServiceName + "/Score"
	svc := Service{
		Name:     "test",
		Register: func(g grpc.ServiceRegistrar) { scorerv1.RegisterScorerServiceServer(g, fakeScorer{}) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return scorerv1.RegisterScorerServiceHandlerClient(ctx, mux, scorerv1.NewScorerServiceClient(conn))
		},
		Policy: auth.Policy{method: {auth.RoleProposer}},
		Validators: Validators{method: func(req any) error {
			if req.(*scorerv1.ScoreRequest).GetProposalId() == "" {
				return errors.New("proposal_id is required")
			}
			return nil
		}},
		Checks: func(context.Context) map[string]string { return map[string]string{"queue": "3 waiting"} },
	}
	s, err := New(context.Background(), svc, Options{
		Listen:          config.Listen{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"},
		Logger:          slog.New(slog.NewJSONHandler(logs, nil)),
		Verifier:        v,
		MaxRequestBytes: 4096,
		ShutdownTimeout: 2 * time.Second,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return &harness{srv: s, token: tok, logs: logs}
}

func (h *harness) post(t *testing.T, body string, withToken bool) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+h.srv.HTTPAddr()+"/score", strings.NewReader(body))
	require.NoError(t, err)
	if withToken {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m), string(raw))
	return resp.StatusCode, m
}

func TestRESTThroughTheChain(t *testing.T) {
	t.Parallel()
	h := start(t)
	code, body := h.post(t, `{"proposal_id":"p1"}`, true)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "for t1", body["explanation"], "the principal reached the handler through REST")
	require.Contains(t, body, "factors", "unpopulated fields are emitted")

	for name, tc := range map[string]struct {
		body   string
		token  bool
		status int
		msg    string
	}{
		"no token":      {`{"proposal_id":"p1"}`, false, http.StatusUnauthorized, "missing bearer token"},
		"validation":    {`{}`, true, http.StatusBadRequest, "proposal_id is required"},
		"unknown field": {`{"proposal_id":"p1","x":1}`, true, http.StatusBadRequest, "unknown field"},
		"bad json":      {`{"proposal_id":`, true, http.StatusBadRequest, ""},
		"panic":         {`{"proposal_id":"panic"}`, true, http.StatusInternalServerError, "internal error"},
		"driver error":  {`{"proposal_id":"driver"}`, true, http.StatusInternalServerError, "internal error"},
		"conflict":      {`{"proposal_id":"conflict"}`, true, http.StatusConflict, "not in a state"},
		"too large":     {`{"proposal_id":"` + strings.Repeat("x", 5000) + `"}`, true, http.StatusRequestEntityTooLarge, "exceeds the limit"},
	} {
		code, body := h.post(t, tc.body, tc.token)
		require.Equal(t, tc.status, code, name)
		require.Contains(t, body["message"], tc.msg, name)
		require.NotContains(t, body["message"], "10.1.2.3", "internals never reach the caller")
	}
	require.Contains(t, h.logs.String(), "panic in handler")
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	h := start(t)
	resp, err := http.Get("http://" + h.srv.HTTPAddr() + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var rep HealthReport
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
	require.Equal(t, "test", rep.Service)
	require.Equal(t, "ok", rep.Status, "a service's own checks inform without degrading")
	require.Equal(t, map[string]string{"queue": "3 waiting"}, rep.Checks)

	h.post(t, `{"proposal_id":"p1"}`, true)
	m, err := http.Get("http://" + h.srv.HTTPAddr() + "/metrics")
	require.NoError(t, err)
	defer m.Body.Close()
	raw, _ := io.ReadAll(m.Body)
	require.Contains(t, string(raw), `grpc_server_handled_total{grpc_code="OK",grpc_method="Score"`)
	require.Contains(t, string(raw), "go_goroutines")
}

func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	for c, want := range map[codes.Code]int{
		codes.InvalidArgument: 400, codes.Unauthenticated: 401, codes.PermissionDenied: 403,
		codes.NotFound: 404, codes.FailedPrecondition: 409, codes.AlreadyExists: 409,
		codes.Unimplemented: 501, codes.DeadlineExceeded: 504, codes.Internal: 500,
	} {
		require.Equal(t, want, HTTPStatus(c), c.String())
	}
}

func TestPortClashFailsAtStart(t *testing.T) {
	t.Parallel()
	h := start(t)
	_, err := New(context.Background(), Service{Name: "again", Register: func(grpc.ServiceRegistrar) {}}, Options{
		Listen: config.Listen{HTTPAddr: "127.0.0.1:0", GRPCAddr: h.srv.GRPCAddr()}, Logger: slog.New(slog.DiscardHandler),
		MaxRequestBytes: 1024, ShutdownTimeout: time.Second,
	})
	require.ErrorContains(t, err, "listen grpc")
}
