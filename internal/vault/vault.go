// Package vault reads the fabric's keys from HashiCorp Vault's KV version 2 secrets
// engine (VAULT_ADDR) instead of files: the service key, the cosign signing key and
// its password, the HIL MFA sealing key (docs/security.md, "Keys in Vault").
//
// The token comes from VAULT_TOKEN, else from a token file (integrations.vault.
// token_file, e.g. written by a Vault agent). Neither the token nor any secret value
// ever appears in an error or a log line: errors name the mount, the path and the
// field, and Vault's HTTP status.
package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// DefaultMount is the KV v2 mount used when none is configured (Vault's dev default).
const DefaultMount = "secret"

// ErrNoField is returned (wrapped) for a secret without the field asked for.
var ErrNoField = errors.New("no such field")

// Options say which Vault to read from, and how to authenticate.
type Options struct {
	// Addr is VAULT_ADDR.
	Addr string
	// Token is VAULT_TOKEN; when empty the token is read from TokenFile.
	Token string
	// TokenFile holds the token (surrounding whitespace ignored).
	TokenFile string
	// Mount is the KV v2 engine's mount path (DefaultMount when empty).
	Mount string
	// Timeout bounds each request (10s when 0).
	Timeout time.Duration
}

// Client reads KV v2 secrets.
type Client struct {
	api   *vaultapi.Client
	mount string
	token string
}

// New returns a Client for opts; it does not contact Vault.
func New(opts Options) (*Client, error) {
	if opts.Addr == "" {
		return nil, errors.New("vault: VAULT_ADDR is not set")
	}
	token := strings.TrimSpace(opts.Token)
	if token == "" && opts.TokenFile != "" {
		raw, err := os.ReadFile(opts.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("vault: token file %s: %w", opts.TokenFile, unwrapPath(err))
		}
		token = strings.TrimSpace(string(raw))
	}
	if token == "" {
		return nil, errors.New("vault: no token: set VAULT_TOKEN or integrations.vault.token_file")
	}
	if opts.Mount == "" {
		opts.Mount = DefaultMount
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault: %w", cfg.Error)
	}
	cfg.Address = opts.Addr
	cfg.Timeout = opts.Timeout
	cfg.MaxRetries = 1
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, errors.New("vault: VAULT_ADDR is not a valid address")
	}
	c.SetToken(token)
	return &Client{api: c, mount: strings.Trim(opts.Mount, "/"), token: token}, nil
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Field reads field of the secret at path (the latest version). Values are strings
// in KV; the caller gets their bytes.
func (c *Client) Field(ctx context.Context, path, field string) ([]byte, error) {
	where := fmt.Sprintf("vault: %s/%s", c.mount, strings.Trim(path, "/"))
	s, err := c.api.KVv2(c.mount).Get(ctx, strings.Trim(path, "/"))
	if err != nil {
		return nil, fmt.Errorf("%s: %s", where, c.describe(err))
	}
	v, ok := s.Data[field]
	if !ok {
		return nil, fmt.Errorf("%s: %w %q", where, ErrNoField, field)
	}
	str, ok := v.(string)
	if !ok || str == "" {
		return nil, fmt.Errorf("%s: field %q is not a non-empty string", where, field)
	}
	return []byte(str), nil
}

// Base64Field reads a binary value stored base64-encoded (standard alphabet).
func (c *Client) Base64Field(ctx context.Context, path, field string) ([]byte, error) {
	v, err := c.Field(ctx, path, field)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(v)))
	if err != nil {
		return nil, fmt.Errorf("vault: %s/%s: field %q is not base64", c.mount, strings.Trim(path, "/"), field)
	}
	return b, nil
}

// Ping checks that Vault answers and the token is accepted (a token lookup-self).
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.api.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		return fmt.Errorf("vault: %s", c.describe(err))
	}
	return nil
}

// describe says what went wrong without the token, the request or the response body
// (a ResponseError carries Vault's own error strings, which name no secret value, but
// the text is rebuilt here so that nothing else slips through).
func (c *Client) describe(err error) string {
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return "secret not found"
	}
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		msg := fmt.Sprintf("HTTP %d", re.StatusCode)
		switch re.StatusCode {
		case http.StatusForbidden:
			msg += " (permission denied: check the token and its policy)"
		case http.StatusNotFound:
			msg += " (no such secret or mount)"
		case http.StatusServiceUnavailable:
			msg += " (sealed or unavailable)"
		}
		return msg
	}
	msg := err.Error()
	if c.token != "" {
		msg = strings.ReplaceAll(msg, c.token, "[REDACTED]")
	}
	return msg
}
