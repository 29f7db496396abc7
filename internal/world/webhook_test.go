package world

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

// tenantEndpoint is a tenant's webhook: a tiny in-memory world that checks the fabric's
// HMAC signature.
type tenantEndpoint struct {
	mu       sync.Mutex
	secret   []byte
	replicas map[string]float64
	calls    []string
}

func (e *tenantEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if Sign(e.secret, r.Header.Get("X-Fabric-Timestamp"), body) != r.Header.Get("X-Fabric-Signature") {
		http.Error(w, `{"error":"bad signature"}`, http.StatusUnauthorized)
		return
	}
	var req struct {
		Op         string         `json:"op"`
		Regions    []string       `json:"regions"`
		Parameters map[string]any `json:"parameters"`
		State      struct {
			Regions map[string]map[string]float64 `json:"regions"`
		} `json:"state"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, req.Op)
	state := func(m map[string]float64) {
		out := map[string]any{}
		for _, r := range req.Regions {
			out[r] = map[string]any{"replicas": m[r]}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"state": map[string]any{"regions": out}})
	}
	want := func() map[string]float64 {
		m := map[string]float64{}
		for _, r := range req.Regions {
			n, ok := req.Parameters["replicas"].(float64)
			if !ok {
				return nil
			}
			m[r] = n
		}
		return m
	}
	switch req.Op {
	case "read":
		state(e.replicas)
	case "plan":
		m := want()
		if m == nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"error":"replicas required"}`))
			return
		}
		state(m)
	case "apply":
		for _, r := range req.Regions {
			if req.State.Regions[r]["replicas"] != e.replicas[r] {
				w.WriteHeader(http.StatusConflict)
				return
			}
		}
		for r, n := range want() {
			e.replicas[r] = n
		}
		state(e.replicas)
	case "restore":
		for r, st := range req.State.Regions {
			e.replicas[r] = st["replicas"]
		}
		state(e.replicas)
	}
}

func TestWebhookExecutor(t *testing.T) {
	t.Parallel()
	ep := &tenantEndpoint{secret: []byte("s3cret"), replicas: map[string]float64{"eu-west": 3}}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	wh := &Webhook{URL: srv.URL, Secret: []byte("s3cret")}
	ctx := context.Background()
	c := Change{TenantID: "t1", Action: "scale", Target: "svc", Regions: []string{"eu-west"}, Parameters: map[string]any{"replicas": 7.0}}

	pre, err := wh.Read(ctx, "t1", "svc", c.Regions)
	require.NoError(t, err)
	plan, err := wh.Plan(ctx, c)
	require.NoError(t, err)
	post, err := wh.Apply(ctx, c, pre)
	require.NoError(t, err)
	require.Equal(t, plan, post)
	require.EqualValues(t, 7, ep.replicas["eu-west"])

	_, err = wh.Apply(ctx, c, pre)
	require.ErrorIs(t, err, store.ErrConflict, "stale pre-state")
	restored, err := wh.Restore(ctx, c, pre)
	require.NoError(t, err)
	require.Equal(t, pre, restored, "restore is exact")

	_, err = wh.Plan(ctx, Change{TenantID: "t1", Action: "scale", Target: "svc", Regions: c.Regions})
	require.True(t, errors.Is(err, ErrRejected))
	require.ErrorContains(t, err, "replicas required")

	bad := &Webhook{URL: srv.URL, Secret: []byte("wrong")}
	_, err = bad.Read(ctx, "t1", "svc", c.Regions)
	require.ErrorContains(t, err, "HTTP 401", "the endpoint authenticates the fabric")
}

func TestRouterPicksTheTenantsExecutor(t *testing.T) {
	t.Parallel()
	ep := &tenantEndpoint{secret: []byte("k"), replicas: map[string]float64{"default": 5}}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	r := Router{Default: newWorld(t), PerTenant: map[string]Executor{"t9": &Webhook{URL: srv.URL, Secret: []byte("k")}}}
	_, err := r.Read(context.Background(), "t9", "svc", nil)
	require.NoError(t, err)
	_, err = r.Read(context.Background(), "t1", "svc", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"read"}, ep.calls, "only t9 went to its webhook")
}

// TestWebhookErrorsDoNotQuoteTheURL: a tenant's webhook URL may carry a token; a
// failed call's error (logged, returned) must not show it.
func TestWebhookErrorsDoNotQuoteTheURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there any more: the call fails in the transport
	w := &Webhook{URL: "http://user:pa55@" + addr + "/hook?token=t0ken", Secret: []byte("k")}
	_, err := w.Read(context.Background(), "t1", "svc", []string{"eu-west"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "t0ken")
	require.NotContains(t, err.Error(), "pa55")
	require.Contains(t, err.Error(), "world: webhook read")
}
