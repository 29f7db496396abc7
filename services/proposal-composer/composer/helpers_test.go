package composer

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	composerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/composer/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/model"
	"github.com/decision-fabric/fabric/internal/signing"
)

var (
	signerOnce sync.Once
	signer     signing.Signer
	signerErr  error
)

// testSigner is one simulation cosign key for the whole package (key derivation with
// scrypt is slow; the key is the same kind the app uses in simulation).
func testSigner(tb testing.TB) signing.Signer {
	tb.Helper()
	signerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "composer-test-key-*")
		if err != nil {
			signerErr = err
			return
		}
		signer, signerErr = signing.LoadOrCreateSimulationKey(dir)
	})
	require.NoError(tb, signerErr)
	return signer
}

// newTestService returns a composer with the embedded templates, the simulated model
// (unless deps sets one) and the test key.
func newTestService(tb testing.TB, deps Deps) (*Service, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	if deps.Signer == nil {
		deps.Signer = testSigner(tb)
	}
	deps.Registerer = reg
	s, err := New(deps)
	require.NoError(tb, err)
	return s, reg
}

// tenantCtx is an authenticated request context for tenant.
func tenantCtx(tenant string) context.Context {
	return auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "u1", TenantID: tenant, Roles: []string{auth.RoleProposer}})
}

// fakeModel answers Suggest with a fixed suggestion or error.
type fakeModel struct {
	sug model.Suggestion
	err error
	// got records the last request.
	mu  sync.Mutex
	got model.SuggestRequest
}

func (f *fakeModel) Suggest(_ context.Context, r model.SuggestRequest) (model.Suggestion, error) {
	f.mu.Lock()
	f.got = r
	f.mu.Unlock()
	return f.sug, f.err
}

func (f *fakeModel) Assess(context.Context, model.AssessRequest) (model.Assessment, error) {
	return model.Assessment{SuccessProbability: 0.5, Model: "fake"}, nil
}

func (f *fakeModel) Name() string { return "fake" }

func (f *fakeModel) last() model.SuggestRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got
}

func compose(tb testing.TB, s *Service, req *composerv1.ComposeRequest) (*composerv1.ComposeResponse, error) {
	tb.Helper()
	if req.TenantId == "" {
		req.TenantId = "t1"
	}
	return s.Compose(tenantCtx("t1"), req)
}
