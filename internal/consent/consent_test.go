package consent

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/signing"
)

func TestCheck(t *testing.T) {
	require.NoError(t, Check(nil))
	require.NoError(t, Check(&typesv1.Consent{GrantedBy: "policy-42", Scopes: []string{"EMAIL", "phone"}}))
	for name, tc := range map[string]struct {
		c    *typesv1.Consent
		want string
	}{
		"e-mail as granted_by": {&typesv1.Consent{GrantedBy: "alice@example.com"}, "consent.granted_by: must be a user or policy id"},
		"full-width e-mail":    {&typesv1.Consent{GrantedBy: "alice＠example.com"}, "consent.granted_by: must be a user or policy id"},
		"control characters":   {&typesv1.Consent{GrantedBy: "a\x00b"}, "consent.granted_by: want 1-256 printable"},
		"phone as scope":       {&typesv1.Consent{GrantedBy: "u1", Scopes: []string{"+44 20 7946 0958"}}, `consent.scopes[0] "<REDACTED:phone>": unknown scope`},
		"secret scope":         {&typesv1.Consent{GrantedBy: "u1", Scopes: []string{"secret"}}, "unknown scope"},
		"too many scopes":      {&typesv1.Consent{GrantedBy: "u1", Scopes: strings.Split(strings.Repeat("email,", 9), ",")}, "consent.scopes: at most 8"},
		"signature not base64": {&typesv1.Consent{GrantedBy: "u1", Signature: "me@example.com"}, "consent.signature: want standard base64"},
	} {
		err := Check(tc.c)
		require.ErrorContains(t, err, tc.want, name)
		require.NotContains(t, err.Error(), "alice", name)
		require.NotContains(t, err.Error(), "7946", name)
	}
}

func TestVerify(t *testing.T) {
	trusted, err := signing.GenerateEd25519()
	require.NoError(t, err)
	stranger, err := signing.GenerateEd25519()
	require.NoError(t, err)
	keys := &signing.Keyring{}
	_, err = keys.Add(trusted.PublicKeyPEM())
	require.NoError(t, err)

	c := &typesv1.Consent{GrantedBy: "policy-42", Scopes: []string{"Email", "pii_field"}}
	_, err = Verify(keys, c)
	require.ErrorIs(t, err, ErrUnsigned)

	require.NoError(t, Sign(stranger, c))
	pol, err := Verify(keys, c)
	require.ErrorIs(t, err, ErrUntrusted)
	require.Empty(t, pol.Allow, "an unverified consent allows nothing")

	require.NoError(t, Sign(trusted, c))
	pol, err = Verify(keys, c)
	require.NoError(t, err)
	require.Equal(t, map[redact.Kind]bool{redact.KindEmail: true, redact.KindPIIField: true}, pol.Allow)
	_, err = Verify(nil, c)
	require.ErrorIs(t, err, ErrUntrusted, "no keys trust no one")

	// The signature covers every field: widening the scopes breaks it.
	c.Scopes = append(c.Scopes, "phone")
	_, err = Verify(keys, c)
	require.ErrorIs(t, err, ErrUntrusted)

	_, err = Verify(keys, &typesv1.Consent{Scopes: []string{"email"}, Signature: "AA=="})
	require.True(t, errors.Is(err, ErrIncomplete))
}
