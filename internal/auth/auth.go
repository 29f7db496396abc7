// Package auth verifies the bearer JWTs every request carries and scopes each call to
// the tenant in the token (P5). Tokens are signed with EdDSA (Ed25519), ES256 or RS256;
// which key verifies them is configuration (auth.public_key_file), or a development key
// created in the data folder when the fabric runs in simulation.
package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/decision-fabric/fabric/internal/keyfile"
	"github.com/decision-fabric/fabric/internal/redact"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Roles a token may carry.
const (
	RoleProposer = "proposer" // submits and reads proposals
	RoleApprover = "approver" // approves high-impact decisions
	RoleAuditor  = "auditor"  // reads audit trails
	RoleAdmin    = "admin"    // every tenant role within its tenant (never service)
	// RoleService is the fabric's own services calling each other. Only a token
	// signed with the fabric's service key (Verifier.TrustServiceKey) carries it; no
	// tenant role implies it, admin included.
	RoleService = "service"
)

// KnownRoles lists every role, for validation and docs.
var KnownRoles = []string{RoleProposer, RoleApprover, RoleAuditor, RoleAdmin, RoleService}

// Claims is the JWT body the fabric issues and accepts.
type Claims struct {
	// TenantID scopes everything the token can see or do.
	TenantID string `json:"tenant_id"`
	// Roles grant access to methods (see Policy).
	Roles []string `json:"roles"`
	// Groups are the subject's groups (teams), which approval rules filter reviewers
	// by (e.g. "sre", "manager"); they grant no method.
	Groups []string `json:"groups,omitempty"`
	jwt.RegisteredClaims
}

// Principal is the authenticated caller of one request.
type Principal struct {
	Subject  string
	TenantID string
	Roles    []string
	// Groups are the token's groups claim (approval rules filter reviewers by them).
	Groups []string
	// Token is the raw bearer token, kept only to forward the caller's identity on
	// service-to-service calls. It is never logged.
	Token string
}

// HasAnyRole reports whether the principal holds one of roles. Admin holds every
// tenant role (proposer, approver, auditor) but never service: a method open to the
// service role alone is closed to every person and agent.
func (p *Principal) HasAnyRole(roles ...string) bool {
	admin := slices.Contains(p.Roles, RoleAdmin)
	for _, r := range roles {
		if slices.Contains(p.Roles, r) || (admin && r != RoleService) {
			return true
		}
	}
	return false
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the request's principal, or nil outside an authenticated call.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}

// Tenant returns the caller's tenant or UNAUTHENTICATED: handlers call it first, so a
// handler reached without the auth interceptor fails closed.
func Tenant(ctx context.Context) (string, error) {
	p := FromContext(ctx)
	if p == nil || p.TenantID == "" {
		return "", status.Error(codes.Unauthenticated, "no authenticated tenant on this request")
	}
	return p.TenantID, nil
}

// RequireTenant checks that a tenant named in a request body or path is the caller's own
// (P5). A mismatch is PERMISSION_DENIED (HTTP 403); an empty one INVALID_ARGUMENT.
func RequireTenant(ctx context.Context, tenantID string) error {
	own, err := Tenant(ctx)
	if err != nil {
		return err
	}
	if tenantID == "" {
		return status.Error(codes.InvalidArgument, "tenant_id is required")
	}
	if tenantID != own {
		return status.Errorf(codes.PermissionDenied, "tenant_id %q does not match the token's tenant; cross-tenant requests need an explicit policy (P5)", redact.Echo(tenantID))
	}
	return nil
}

// ErrInvalidToken is returned for every token that fails verification; the reason is
// wrapped for logs but never reveals the token itself.
var ErrInvalidToken = errors.New("invalid token")

// Verifier checks tokens.
type Verifier struct {
	key      crypto.PublicKey
	issuer   string
	audience string
	methods  []string
	// serviceKey verifies the fabric's own service tokens (TrustServiceKey); nil: none.
	serviceKey ed25519.PublicKey

	// cache remembers tokens that verified, keyed by the exact token bytes, until the
	// earlier of their expiry and cacheTTL: a signature check per call is the largest
	// cost of a request otherwise (every hop between services re-verifies the token).
	mu    sync.Mutex
	cache map[string]cached
	now   func() time.Time
}

type cached struct {
	p       Principal
	expires time.Time
}

const (
	cacheTTL  = 5 * time.Minute
	cacheSize = 10000
)

// TrustServiceKey makes v also accept the fabric's own service tokens: tokens whose
// "kid" is ServiceKeyID, signed (EdDSA) by key, and carrying the service role and no
// other. Every other token is still verified with the identity provider's key.
func (v *Verifier) TrustServiceKey(key ed25519.PublicKey) {
	v.serviceKey = key
	if !slices.Contains(v.methods, jwt.SigningMethodEdDSA.Alg()) {
		v.methods = append(v.methods, jwt.SigningMethodEdDSA.Alg())
	}
}

// NewVerifier verifies tokens signed by key's private half for issuer and audience.
func NewVerifier(key crypto.PublicKey, issuer, audience string) (*Verifier, error) {
	v := &Verifier{key: key, issuer: issuer, audience: audience, cache: map[string]cached{}, now: time.Now}
	switch key.(type) {
	case ed25519.PublicKey:
		v.methods = []string{jwt.SigningMethodEdDSA.Alg()}
	case *ecdsa.PublicKey:
		v.methods = []string{"ES256", "ES384", "ES512"}
	case *rsa.PublicKey:
		v.methods = []string{"RS256", "RS384", "RS512", "PS256"}
	default:
		return nil, fmt.Errorf("auth: unsupported public key type %T", key)
	}
	return v, nil
}

// Verify parses and checks a raw token: signature, algorithm, issuer, audience, expiry
// (required), tenant claim (required) and roles (known ones only).
func (v *Verifier) Verify(raw string) (*Principal, error) {
	now := v.now()
	v.mu.Lock()
	hit, ok := v.cache[raw]
	v.mu.Unlock()
	if ok && now.Before(hit.expires) {
		p := hit.p
		p.Roles = slices.Clone(p.Roles)
		return &p, nil
	}
	p, exp, err := v.verify(raw)
	if err != nil {
		return nil, err
	}
	stored := *p
	stored.Roles = slices.Clone(p.Roles)
	v.mu.Lock()
	if len(v.cache) >= cacheSize {
		clear(v.cache) // crude but bounded; the next calls re-verify
	}
	until := now.Add(cacheTTL)
	if exp.Before(until) {
		until = exp
	}
	v.cache[raw] = cached{p: stored, expires: until}
	v.mu.Unlock()
	return p, nil
}

// verify does the full check and returns the token's expiry.
func (v *Verifier) verify(raw string) (*Principal, time.Time, error) {
	var c Claims
	service := false
	_, err := jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid == ServiceKeyID && v.serviceKey != nil {
			if t.Method.Alg() != jwt.SigningMethodEdDSA.Alg() {
				return nil, errors.New("a service token must be EdDSA")
			}
			service = true
			return v.serviceKey, nil
		}
		if _, idpEd := v.key.(ed25519.PublicKey); !idpEd && t.Method.Alg() == jwt.SigningMethodEdDSA.Alg() {
			return nil, errors.New("EdDSA is accepted for service tokens only")
		}
		return v.key, nil
	},
		jwt.WithValidMethods(v.methods),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(v.now),
	)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.TenantID == "" {
		return nil, time.Time{}, fmt.Errorf("%w: no tenant_id claim", ErrInvalidToken)
	}
	if service && (len(c.Roles) != 1 || c.Roles[0] != RoleService) {
		return nil, time.Time{}, fmt.Errorf("%w: a token signed with the service key carries the service role only", ErrInvalidToken)
	}
	if !service && slices.Contains(c.Roles, RoleService) {
		// The identity provider (or the development key) cannot grant the fabric's own
		// identity: only the service key does.
		return nil, time.Time{}, fmt.Errorf("%w: the service role is granted only by the fabric's service key", ErrInvalidToken)
	}
	for _, r := range c.Roles {
		if !slices.Contains(KnownRoles, r) {
			return nil, time.Time{}, fmt.Errorf("%w: unknown role %q", ErrInvalidToken, r)
		}
	}
	if len(c.Groups) > MaxGroups {
		return nil, time.Time{}, fmt.Errorf("%w: %d groups (at most %d)", ErrInvalidToken, len(c.Groups), MaxGroups)
	}
	for _, g := range c.Groups {
		if !validGroup(g) {
			return nil, time.Time{}, fmt.Errorf("%w: group %q: want 1-64 letters, digits, '-', '_', '.', ':' or '/'", ErrInvalidToken, g)
		}
	}
	return &Principal{Subject: c.Subject, TenantID: c.TenantID, Roles: slices.Clone(c.Roles), Groups: slices.Clone(c.Groups), Token: raw}, c.ExpiresAt.Time, nil
}

// Signer issues tokens; the fabric uses it for development tokens (`fabric token`).
type Signer struct {
	key      ed25519.PrivateKey
	issuer   string
	audience string
	keyID    string // "kid" header, when set
}

// NewSigner signs with an Ed25519 key.
func NewSigner(key ed25519.PrivateKey, issuer, audience string) *Signer {
	return &Signer{key: key, issuer: issuer, audience: audience}
}

// MaxGroups bounds a token's groups claim.
const MaxGroups = 64

// validGroup: 1-64 characters of a conservative alphabet (group names come from an
// identity provider and reach logs and approval records).
func validGroup(g string) bool {
	if g == "" || len(g) > 64 {
		return false
	}
	for _, r := range g {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("-_.:/", r):
		default:
			return false
		}
	}
	return true
}

// Mint returns a signed token for subject in tenant with roles, valid for ttl.
func (s *Signer) Mint(subject, tenant string, roles []string, ttl time.Duration) (string, error) {
	return s.MintWithGroups(subject, tenant, roles, nil, ttl)
}

// MintWithGroups is Mint with a groups claim.
func (s *Signer) MintWithGroups(subject, tenant string, roles, groups []string, ttl time.Duration) (string, error) {
	if len(groups) > MaxGroups {
		return "", fmt.Errorf("auth: %d groups (at most %d)", len(groups), MaxGroups)
	}
	for _, g := range groups {
		if !validGroup(g) {
			return "", fmt.Errorf("auth: group %q: want 1-64 letters, digits, '-', '_', '.', ':' or '/'", g)
		}
	}
	if tenant == "" {
		return "", errors.New("auth: tenant is required")
	}
	for _, r := range roles {
		if !slices.Contains(KnownRoles, r) {
			return "", fmt.Errorf("auth: unknown role %q (known: %s)", r, strings.Join(KnownRoles, ", "))
		}
	}
	now := time.Now()
	c := Claims{
		TenantID: tenant,
		Roles:    roles,
		Groups:   groups,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{s.audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	if s.keyID != "" {
		t.Header["kid"] = s.keyID
	}
	return t.SignedString(s.key)
}

// ServiceKeyID is the "kid" of the fabric's own service tokens (see
// NewServiceSigner and Verifier.TrustServiceKey).
const ServiceKeyID = "fabric-service"

// NewServiceSigner mints the fabric's own service tokens: signed with the service key
// and marked with ServiceKeyID, so a verifier that trusts the key accepts them for the
// service role only.
func NewServiceSigner(key ed25519.PrivateKey, issuer, audience string) *Signer {
	return &Signer{key: key, issuer: issuer, audience: audience, keyID: ServiceKeyID}
}

// LoadPrivateKeyFile reads an Ed25519 private key (PEM "PRIVATE KEY", PKCS #8), e.g.
// made with `openssl genpkey -algorithm ed25519`.
func LoadPrivateKeyFile(path string) (ed25519.PrivateKey, error) {
	return readEd25519(path)
}

// DevKeyPath is where the development signing key lives inside the data folder.
func DevKeyPath(dataDir string) string { return filepath.Join(dataDir, "keys", "dev-jwt-ed25519.pem") }

// DevServiceKeyPath is where the development service key lives inside the data folder.
// It is a different key from the development identity-provider key: a token minted
// with `fabric token` never carries the service role.
func DevServiceKeyPath(dataDir string) string {
	return filepath.Join(dataDir, "keys", "dev-service-ed25519.pem")
}

// LoadOrCreateDevKey returns the development Ed25519 key, creating it (mode 0600, its
// folder 0700) on first use. Concurrent first starts agree on one key: the file is
// created exclusively and a loser re-reads the winner's.
func LoadOrCreateDevKey(dataDir string) (ed25519.PrivateKey, error) {
	return loadOrCreateEd25519(DevKeyPath(dataDir))
}

// LoadOrCreateDevServiceKey returns the development service key (simulation only),
// created like LoadOrCreateDevKey's.
func LoadOrCreateDevServiceKey(dataDir string) (ed25519.PrivateKey, error) {
	return loadOrCreateEd25519(DevServiceKeyPath(dataDir))
}

func loadOrCreateEd25519(path string) (ed25519.PrivateKey, error) {
	if key, err := readEd25519(path); err == nil {
		return key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	err = keyfile.CreateExclusive(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readEd25519(path) // another first start won; its key is complete
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return priv, nil
}

func readEd25519(path string) (ed25519.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseEd25519(path, raw)
}

// ParsePrivateKeyPEM parses an Ed25519 private key (PEM "PRIVATE KEY", PKCS #8) held
// in memory, e.g. read from Vault; name says where it came from in errors (never the
// key itself).
func ParsePrivateKeyPEM(name string, raw []byte) (ed25519.PrivateKey, error) {
	return parseEd25519(name, raw)
}

func parseEd25519(name string, raw []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("auth: %s: no PEM block", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", name, err)
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("auth: %s: not an Ed25519 key", name)
	}
	return ed, nil
}

// LoadPublicKeyFile reads a PEM "PUBLIC KEY" (PKIX) file.
func LoadPublicKeyFile(path string) (crypto.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("auth: %s: want a PEM \"PUBLIC KEY\" block", path)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	return k, nil
}
