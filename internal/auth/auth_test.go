package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func newPair(t *testing.T) (*Signer, *Verifier) {
	t.Helper()
	key, err := LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	v, err := NewVerifier(key.Public(), "iss", "aud")
	require.NoError(t, err)
	return NewSigner(key, "iss", "aud"), v
}

func TestDevKeyIsStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := LoadOrCreateDevKey(dir)
	require.NoError(t, err)
	b, err := LoadOrCreateDevKey(dir)
	require.NoError(t, err)
	require.Equal(t, a, b)
}

func TestVerify(t *testing.T) {
	t.Parallel()
	s, v := newPair(t)
	good, err := s.Mint("alice", "t1", []string{RoleProposer}, time.Hour)
	require.NoError(t, err)
	p, err := v.Verify(good)
	require.NoError(t, err)
	require.Equal(t, "t1", p.TenantID)
	require.Equal(t, "alice", p.Subject)

	expired, err := s.Mint("alice", "t1", nil, -time.Hour)
	require.NoError(t, err)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forged, err := NewSigner(otherKey, "iss", "aud").Mint("alice", "t1", nil, time.Hour)
	require.NoError(t, err)
	wrongAud, err := NewSigner(s.key, "iss", "other").Mint("alice", "t1", nil, time.Hour)
	require.NoError(t, err)
	noTenant := jwt.NewWithClaims(jwt.SigningMethodEdDSA, Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: "iss", Audience: jwt.ClaimStrings{"aud"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}})
	noTenantRaw, err := noTenant.SignedString(s.key)
	require.NoError(t, err)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{TenantID: "t1"})
	hsRaw, err := hs.SignedString([]byte("k"))
	require.NoError(t, err)

	for name, raw := range map[string]string{
		"expired": expired, "forged": forged, "wrong audience": wrongAud,
		"no tenant": noTenantRaw, "alg confusion": hsRaw, "garbage": "a.b.c",
	} {
		_, err := v.Verify(raw)
		require.ErrorIs(t, err, ErrInvalidToken, name)
	}
	_, err = s.Mint("x", "t1", []string{"root"}, time.Hour)
	require.Error(t, err)
}

func call(t *testing.T, v *Verifier, p Policy, method, authz string) (*Principal, error) {
	t.Helper()
	ctx := context.Background()
	if authz != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authz))
	}
	var got *Principal
	_, err := UnaryServerInterceptor(v, p)(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method},
		func(ctx context.Context, _ any) (any, error) { got = FromContext(ctx); return nil, nil })
	return got, err
}

func TestInterceptor(t *testing.T) {
	t.Parallel()
	s, v := newPair(t)
	policy := Policy{"/svc/Propose": {RoleProposer}}
	proposer, _ := s.Mint("a", "t1", []string{RoleProposer}, time.Hour)
	auditor, _ := s.Mint("b", "t1", []string{RoleAuditor}, time.Hour)

	p, err := call(t, v, policy, "/svc/Propose", "Bearer "+proposer)
	require.NoError(t, err)
	require.Equal(t, "t1", p.TenantID)

	for name, tc := range map[string]struct {
		method, authz string
		code          codes.Code
	}{
		"no token":          {"/svc/Propose", "", codes.Unauthenticated},
		"not bearer":        {"/svc/Propose", "Basic abc", codes.Unauthenticated},
		"bad token":         {"/svc/Propose", "Bearer x.y.z", codes.Unauthenticated},
		"wrong role":        {"/svc/Propose", "Bearer " + auditor, codes.PermissionDenied},
		"method not listed": {"/svc/Other", "Bearer " + proposer, codes.PermissionDenied},
	} {
		_, err := call(t, v, policy, tc.method, tc.authz)
		require.Equal(t, tc.code, status.Code(err), name)
		require.NotContains(t, err.Error(), proposer, "token must not be echoed")
	}
	_, err = call(t, v, policy, "/grpc.health.v1.Health/Check", "")
	require.NoError(t, err, "health is public")
}

func TestRequireTenant(t *testing.T) {
	t.Parallel()
	ctx := WithPrincipal(context.Background(), &Principal{TenantID: "t1"})
	require.NoError(t, RequireTenant(ctx, "t1"))
	require.Equal(t, codes.PermissionDenied, status.Code(RequireTenant(ctx, "t2")))
	require.Equal(t, codes.InvalidArgument, status.Code(RequireTenant(ctx, "")))
	require.Equal(t, codes.Unauthenticated, status.Code(RequireTenant(context.Background(), "t1")))
}

func TestVerifyCacheHonoursExpiry(t *testing.T) {
	t.Parallel()
	s, v := newPair(t)
	now := time.Now()
	v.now = func() time.Time { return now }
	tok, err := s.Mint("a", "t1", []string{RoleProposer}, 2*time.Second)
	require.NoError(t, err)
	p1, err := v.Verify(tok)
	require.NoError(t, err)
	p1.Roles[0] = "admin" // callers cannot poison the cache
	p2, err := v.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, []string{RoleProposer}, p2.Roles)

	now = now.Add(time.Minute) // past exp (and past the 30s leeway)
	v.now = func() time.Time { return now }
	_, err = v.Verify(tok)
	require.ErrorIs(t, err, ErrInvalidToken, "a cached token still expires")
}
