package vault_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/vault"
	"github.com/decision-fabric/fabric/internal/vault/vaulttest"
)

const token = "hvs.test-token-value-never-logged"

func TestFieldReadsKVv2(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, token, "kv")
	srv.Put("fabric/mfa", map[string]any{"key": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")), "n": 3.0})
	srv.Put("fabric/service-key", map[string]any{"key": "-----BEGIN PRIVATE KEY-----\n"})
	c, err := vault.New(vault.Options{Addr: srv.URL, Token: token, Mount: "kv"})
	require.NoError(t, err)
	ctx := context.Background()

	v, err := c.Field(ctx, "fabric/service-key", "key")
	require.NoError(t, err)
	require.Equal(t, "-----BEGIN PRIVATE KEY-----\n", string(v))
	b, err := c.Base64Field(ctx, "/fabric/mfa/", "key")
	require.NoError(t, err)
	require.Equal(t, "0123456789abcdef0123456789abcdef", string(b))
	require.NoError(t, c.Ping(ctx))

	_, err = c.Field(ctx, "fabric/mfa", "missing")
	require.ErrorIs(t, err, vault.ErrNoField)
	require.ErrorContains(t, err, `"missing"`)
	_, err = c.Field(ctx, "fabric/mfa", "n")
	require.ErrorContains(t, err, "not a non-empty string")
	_, err = c.Base64Field(ctx, "fabric/service-key", "key")
	require.ErrorContains(t, err, "not base64")
	require.NotContains(t, err.Error(), "BEGIN", "a value never appears in an error")
	_, err = c.Field(ctx, "fabric/nothing", "key")
	require.ErrorContains(t, err, "kv/fabric/nothing: secret not found")
}

func TestWrongTokenIsPermissionDeniedWithoutTheToken(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, token, "secret")
	srv.Put("fabric/service-key", map[string]any{"key": "x"})
	wrong := "hvs.wrong-token-must-not-leak"
	c, err := vault.New(vault.Options{Addr: srv.URL, Token: wrong})
	require.NoError(t, err)
	_, err = c.Field(context.Background(), "fabric/service-key", "key")
	require.ErrorContains(t, err, "HTTP 403 (permission denied")
	require.NotContains(t, err.Error(), wrong)
	err = c.Ping(context.Background())
	require.ErrorContains(t, err, "HTTP 403")
	require.NotContains(t, err.Error(), wrong)
	require.Zero(t, srv.Reads.Load())
}

func TestTokenFromFile(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, token, "secret")
	srv.Put("k", map[string]any{"key": "v"})
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte(token+"\n"), 0o600))
	c, err := vault.New(vault.Options{Addr: srv.URL, TokenFile: path})
	require.NoError(t, err)
	v, err := c.Field(context.Background(), "k", "key")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))

	c, err = vault.New(vault.Options{Addr: srv.URL, Token: token, TokenFile: filepath.Join(t.TempDir(), "absent")})
	require.NoError(t, err, "VAULT_TOKEN wins over the file")
	_, err = vault.New(vault.Options{Addr: srv.URL, TokenFile: filepath.Join(t.TempDir(), "absent")})
	require.ErrorContains(t, err, "token file")
	_, err = vault.New(vault.Options{Addr: srv.URL})
	require.ErrorContains(t, err, "no token")
	_ = c
}

func TestUnreachableVaultErrorHasNoToken(t *testing.T) {
	t.Parallel()
	c, err := vault.New(vault.Options{Addr: "http://127.0.0.1:1", Token: token})
	require.NoError(t, err)
	_, err = c.Field(context.Background(), "k", "key")
	require.Error(t, err)
	require.NotContains(t, err.Error(), token)
}
