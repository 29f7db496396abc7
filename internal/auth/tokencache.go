package auth

import (
	"sync"
	"time"
)

// TokenCache hands out a service's own tokens, one per tenant, minted once and reused
// until half their lifetime has passed: minting signs (Ed25519), and a fresh token per
// internal call would also defeat the verifier's cache of verified tokens.
type TokenCache struct {
	mint func(tenant string) (string, error)
	ttl  time.Duration
	now  func() time.Time

	mu     sync.Mutex
	tokens map[string]cachedToken
}

type cachedToken struct {
	token   string
	renewAt time.Time
}

// NewTokenCache caches the tokens s mints for subject with roles, valid for ttl.
func NewTokenCache(s *Signer, subject string, roles []string, ttl time.Duration) *TokenCache {
	return &TokenCache{
		mint: func(tenant string) (string, error) { return s.Mint(subject, tenant, roles, ttl) },
		ttl:  ttl, now: time.Now, tokens: map[string]cachedToken{},
	}
}

// Token returns a valid token for tenant, minting one when none is cached or the
// cached one is past half its lifetime.
func (c *TokenCache) Token(tenant string) (string, error) {
	now := c.now()
	c.mu.Lock()
	t, ok := c.tokens[tenant]
	c.mu.Unlock()
	if ok && now.Before(t.renewAt) {
		return t.token, nil
	}
	tok, err := c.mint(tenant)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.tokens[tenant] = cachedToken{token: tok, renewAt: now.Add(c.ttl / 2)}
	c.mu.Unlock()
	return tok, nil
}
