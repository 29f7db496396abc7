package scorer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/server"
)

// served runs the scorer on the platform server (interceptors, gateway) on loopback.
type served struct {
	srv     *server.Server
	signer  *auth.Signer
	service *auth.Signer
}

func serve(t *testing.T, svc *Service) *served {
	t.Helper()
	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	v, err := auth.NewVerifier(key.Public(), "i", "a")
	require.NoError(t, err)
	svcKey, err := auth.LoadOrCreateDevServiceKey(t.TempDir())
	require.NoError(t, err)
	v.TrustServiceKey(svcKey.Public().(ed25519.PublicKey))
	s, err := server.New(context.Background(), svc.Definition(), server.Options{
		Listen:          config.Listen{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"},
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Verifier:        v,
		MaxRequestBytes: 1 << 20,
		ShutdownTimeout: 2 * time.Second,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return &served{srv: s, signer: auth.NewSigner(key, "i", "a"), service: auth.NewServiceSigner(svcKey, "i", "a")}
}

// token mints an identity provider's token, or the fabric's own for the service role.
func (s *served) token(t *testing.T, tenant string, roles ...string) string {
	t.Helper()
	signer := s.signer
	if slices.Equal(roles, []string{auth.RoleService}) {
		signer = s.service
	}
	tok, err := signer.Mint("u1", tenant, roles, time.Hour)
	require.NoError(t, err)
	return tok
}

func (s *served) post(t *testing.T, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.srv.HTTPAddr()+"/score", strings.NewReader(body))
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

func TestRESTScore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := serve(t, f.svc)
	t1 := s.token(t, "t1", auth.RoleProposer)

	raw, err := protojson.Marshal(f.target)
	require.NoError(t, err)
	full := string(raw)
	code, body := s.post(t, t1, full)
	require.Equal(t, http.StatusOK, code, string(body))
	var got struct {
		Confidence float64 `json:"confidence"`
		Risk       struct {
			Score float64 `json:"score"`
			Level string  `json:"level"`
		} `json:"risk"`
		CostEstimate struct {
			Amount    float64 `json:"amount"`
			Currency  string  `json:"currency"`
			Breakdown []struct {
				Item   string  `json:"item"`
				Amount float64 `json:"amount"`
			} `json:"breakdown"`
		} `json:"cost_estimate"`
		Explanation string `json:"explanation"`
		Factors     []struct {
			Name string `json:"name"`
		} `json:"factors"`
	}
	require.NoError(t, json.Unmarshal(body, &got))
	require.Greater(t, got.Confidence, 0.0)
	require.LessOrEqual(t, got.Confidence, 1.0)
	require.Contains(t, []string{LevelLow, LevelMedium, LevelHigh}, got.Risk.Level)
	require.Equal(t, 438.0, got.CostEstimate.Amount)
	require.Equal(t, "USD", got.CostEstimate.Currency)
	require.Len(t, got.CostEstimate.Breakdown, 2)
	require.True(t, strings.HasPrefix(got.Explanation, "Confidence is "))
	require.Len(t, got.Factors, 4)

	// Byte-identical on repeat.
	_, again := s.post(t, t1, full)
	require.True(t, bytes.Equal(body, again))

	for _, c := range []struct {
		name, token, body string
		want              int
	}{
		{"no token", "", full, http.StatusUnauthorized},
		{"missing proposal_id", t1, `{}`, http.StatusBadRequest},
		{"not a proposal id", t1, `{"proposal_id":"p1"}`, http.StatusBadRequest},
		{"only a proposal id", t1, `{"proposal_id":"` + ulid.Make().String() + `"}`, http.StatusBadRequest},
		{"another tenant's token", s.token(t, "t2", auth.RoleProposer), full, http.StatusForbidden},
		{"role not allowed", s.token(t, "t1", auth.RoleAuditor), full, http.StatusForbidden},
		{"service role allowed", s.token(t, "t1", auth.RoleService), full, http.StatusOK},
	} {
		code, body := s.post(t, c.token, c.body)
		require.Equal(t, c.want, code, "%s: %s", c.name, body)
	}
}

func TestGRPCScore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := serve(t, f.svc)
	conn, err := grpc.NewClient(s.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c := scorerv1.NewScorerServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+s.token(t, "t1", auth.RoleService))
	r, err := c.Score(ctx, f.target)
	require.NoError(t, err)
	require.Equal(t, int32(3), r.GetHistory().GetSuccesses())
	_, err = c.Score(ctx, &scorerv1.ScoreRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "proposal_id is required")
}
