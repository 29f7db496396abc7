package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// The fabric's service key is trusted for service tokens only: marked with its kid,
// EdDSA, the service role and nothing else. It never stands in for the identity
// provider's key, nor the other way round.
func TestServiceKeyIsTrustedForServiceTokensOnly(t *testing.T) {
	idp, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, svcKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	v, err := NewVerifier(&idp.PublicKey, "iss", "aud")
	require.NoError(t, err)
	v.TrustServiceKey(svcKey.Public().(ed25519.PublicKey))
	svc := NewServiceSigner(svcKey, "iss", "aud")

	tok, err := svc.Mint("fabric:decision-coordinator", "t1", []string{RoleService}, time.Minute)
	require.NoError(t, err)
	p, err := v.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, []string{RoleService}, p.Roles)

	for name, roles := range map[string][]string{
		"a person's role":         {RoleProposer},
		"service and admin roles": {RoleService, RoleAdmin},
	} {
		tok, err := svc.Mint("fabric:x", "t1", roles, time.Minute)
		require.NoError(t, err)
		_, err = v.Verify(tok)
		require.ErrorIs(t, err, ErrInvalidToken, name)
	}

	// Signed with the service key but not marked as a service token: checked against
	// the identity provider's key, and refused.
	unmarked, err := NewSigner(svcKey, "iss", "aud").Mint("x", "t1", []string{RoleAdmin}, time.Minute)
	require.NoError(t, err)
	_, err = v.Verify(unmarked)
	require.ErrorIs(t, err, ErrInvalidToken)

	// Signed by the identity provider but marked as a service token: checked against the
	// service key, and refused.
	c := Claims{TenantID: "t1", Roles: []string{RoleService}, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: "iss", Audience: jwt.ClaimStrings{"aud"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}
	forged := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	forged.Header["kid"] = ServiceKeyID
	raw, err := forged.SignedString(idp)
	require.NoError(t, err)
	_, err = v.Verify(raw)
	require.ErrorIs(t, err, ErrInvalidToken)

	// Without TrustServiceKey, service tokens are just unknown signatures.
	plain, err := NewVerifier(&idp.PublicKey, "iss", "aud")
	require.NoError(t, err)
	_, err = plain.Verify(tok)
	require.ErrorIs(t, err, ErrInvalidToken)

	// An identity provider token still verifies.
	c.Roles = []string{RoleProposer}
	ok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	raw, err = ok.SignedString(idp)
	require.NoError(t, err)
	_, err = v.Verify(raw)
	require.NoError(t, err)
}

// The service role is the fabric's own identity: a token the identity provider signed
// never carries it, whatever else it claims, and admin implies every tenant role but
// never service (issue 9: an admin token wrote the audit log).
func TestServiceRoleComesOnlyFromTheServiceKey(t *testing.T) {
	_, idpKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, svcKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	v, err := NewVerifier(idpKey.Public(), "iss", "aud")
	require.NoError(t, err)
	idp := NewSigner(idpKey, "iss", "aud")
	for name, roles := range map[string][]string{
		"service alone":     {RoleService},
		"admin and service": {RoleAdmin, RoleService},
		"auditor, service":  {RoleAuditor, RoleService},
	} {
		tok, err := idp.Mint("mallory", "t1", roles, time.Minute)
		require.NoError(t, err)
		_, err = v.Verify(tok)
		require.ErrorIs(t, err, ErrInvalidToken, name)
		require.ErrorContains(t, err, "only by the fabric's service key", name)
	}
	// Not even with a service key trusted, when the token is the identity provider's.
	v.TrustServiceKey(svcKey.Public().(ed25519.PublicKey))
	tok, err := idp.Mint("mallory", "t1", []string{RoleService}, time.Minute)
	require.NoError(t, err)
	_, err = v.Verify(tok)
	require.ErrorIs(t, err, ErrInvalidToken)
	tok, err = NewServiceSigner(svcKey, "iss", "aud").Mint("fabric:x", "t1", []string{RoleService}, time.Minute)
	require.NoError(t, err)
	p, err := v.Verify(tok)
	require.NoError(t, err)
	require.True(t, p.HasAnyRole(RoleService))
	require.False(t, p.HasAnyRole(RoleAdmin, RoleProposer), "service is not a tenant role")
}

func TestAdminHoldsEveryTenantRoleButNotService(t *testing.T) {
	admin := &Principal{TenantID: "t1", Roles: []string{RoleAdmin}}
	for _, r := range []string{RoleProposer, RoleApprover, RoleAuditor, RoleAdmin} {
		require.True(t, admin.HasAnyRole(r), r)
	}
	require.False(t, admin.HasAnyRole(RoleService))
	require.True(t, admin.HasAnyRole(RoleService, RoleAuditor), "any one of the roles suffices")
	for _, r := range []string{RoleProposer, RoleApprover, RoleAuditor} {
		require.False(t, (&Principal{Roles: []string{r}}).HasAnyRole(RoleService), r)
	}
}
