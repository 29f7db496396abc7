package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTokenCacheReusesUntilHalfLife(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	c := NewTokenCache(NewSigner(key, "iss", "aud"), "fabric:test", []string{RoleService}, time.Minute)
	clock := time.Now()
	c.now = func() time.Time { return clock }
	mints := 0
	mint := c.mint
	c.mint = func(tenant string) (string, error) { mints++; return mint(tenant) }

	a, err := c.Token("t1")
	require.NoError(t, err)
	b, err := c.Token("t1")
	require.NoError(t, err)
	require.Equal(t, a, b)
	require.Equal(t, 1, mints)

	_, err = c.Token("t2")
	require.NoError(t, err)
	require.Equal(t, 2, mints, "one token per tenant")

	clock = clock.Add(31 * time.Second)
	_, err = c.Token("t1")
	require.NoError(t, err)
	require.Equal(t, 3, mints, "renewed past half its lifetime")

	_, err = c.Token("")
	require.Error(t, err, "minting errors are returned")
}
