// Package consent is the one place a consent record (types.v1.Consent, P1) is judged:
// its shape, the personal data in its own fields, and its signature. The composer and
// the coordinator both use it, so that a consent means the same wherever it appears:
//
//   - Check refuses a malformed consent, and one whose own fields carry personal
//     data or a secret (granted_by names a user or policy id; it is stored).
//   - Verify accepts a consent only when it names who granted it and at least one
//     scope and is signed by a trusted key over its canonical JSON with `signature`
//     empty. Only a verified consent exempts anything from redaction (P1): an
//     unsigned or forged one exempts nothing.
package consent

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/signing"
)

// Scopes maps each consent scope to the redact kind it keeps. Scopes are the redact
// kind names, compared case-insensitively. Secrets have no scope: they are always
// redacted.
var Scopes = map[string]redact.Kind{
	"email":       redact.KindEmail,
	"phone":       redact.KindPhone,
	"card":        redact.KindCard,
	"iban":        redact.KindIBAN,
	"national_id": redact.KindNationalID,
	"ipv4":        redact.KindIPv4,
	"ipv6":        redact.KindIPv6,
	// Named personal-data fields (name, address, date of birth, ...) in structured input.
	"pii_field": redact.KindPIIField,
}

// scopeNames lists Scopes' keys, sorted, for error messages.
var scopeNames = slices.Sorted(maps.Keys(Scopes))

// Limits of a consent's fields.
const (
	maxGrantedBy = 256
	maxSignature = 4096
)

// Errors of Verify.
var (
	// ErrIncomplete: the consent does not name granted_by, or has no scope.
	ErrIncomplete = errors.New("consent must name granted_by and at least one scope (P1)")
	// ErrUnsigned: the consent has no signature.
	ErrUnsigned = errors.New("consent is not signed (P1): sign its canonical JSON (signature empty) with a trusted key")
	// ErrUntrusted: the signature does not verify with any trusted key.
	ErrUntrusted = errors.New("consent signature does not verify with any trusted key (P1)")
)

// Check validates a consent that is present (nil is valid): granted_by at most 256
// printable characters holding no personal data or secret, known scopes, a standard
// base64 signature, a valid granted_at. Its errors name the field ("consent.scopes[1]")
// and quote request values only through redact.Echo.
func Check(c *typesv1.Consent) error {
	if c == nil {
		return nil
	}
	if g := c.GetGrantedBy(); g != "" {
		if len(g) > maxGrantedBy || !printable(g) {
			return fmt.Errorf("consent.granted_by: want 1-%d printable characters", maxGrantedBy)
		}
		if fs := redact.Find(g); len(fs) > 0 {
			return fmt.Errorf("consent.granted_by: must be a user or policy id, not personal data or a secret (found %s)", fs[0].Kind)
		}
	}
	if len(c.GetScopes()) > len(Scopes) {
		return fmt.Errorf("consent.scopes: at most %d", len(Scopes))
	}
	for i, s := range c.GetScopes() {
		if _, ok := Scopes[strings.ToLower(s)]; !ok {
			return fmt.Errorf("consent.scopes[%d] %q: unknown scope; valid: %s (secrets are always redacted)", i, redact.Echo(s), strings.Join(scopeNames, ", "))
		}
	}
	if sig := c.GetSignature(); sig != "" {
		if len(sig) > maxSignature {
			return fmt.Errorf("consent.signature: at most %d characters", maxSignature)
		}
		if _, err := base64.StdEncoding.DecodeString(sig); err != nil {
			return fmt.Errorf("consent.signature: want standard base64")
		}
	}
	if ts := c.GetGrantedAt(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return fmt.Errorf("consent.granted_at: %w", err)
		}
	}
	return nil
}

// Payload is what a consent's signature covers: the RFC 8785 canonical JSON of c
// with `signature` empty.
func Payload(c *typesv1.Consent) ([]byte, error) {
	unsigned := proto.Clone(c).(*typesv1.Consent)
	unsigned.Signature = ""
	b, err := canonical.Proto(unsigned)
	if err != nil {
		return nil, fmt.Errorf("consent: canonical form: %w", err)
	}
	return b, nil
}

// Sign sets c.Signature to s's signature over Payload(c).
func Sign(s signing.Signer, c *typesv1.Consent) error {
	payload, err := Payload(c)
	if err != nil {
		return err
	}
	sig, err := s.Sign(payload)
	if err != nil {
		return fmt.Errorf("consent: sign: %w", err)
	}
	c.Signature = sig
	return nil
}

// Verify checks that c is complete and signed by a key of keys (nil keys trust no
// one), and returns the redaction policy it grants: the kinds of its scopes. Any
// failure is ErrIncomplete, ErrUnsigned or ErrUntrusted (wrapped) with the zero
// Policy, which allows nothing. Verify does not Check c.
func Verify(keys *signing.Keyring, c *typesv1.Consent) (redact.Policy, error) {
	switch {
	case c.GetGrantedBy() == "" || len(c.GetScopes()) == 0:
		return redact.Policy{}, ErrIncomplete
	case c.GetSignature() == "":
		return redact.Policy{}, ErrUnsigned
	}
	payload, err := Payload(c)
	if err != nil {
		return redact.Policy{}, err
	}
	if keys == nil || !keys.VerifyAny(payload, c.GetSignature()) {
		return redact.Policy{}, ErrUntrusted
	}
	allow := map[redact.Kind]bool{}
	for _, s := range c.GetScopes() {
		if k, ok := Scopes[strings.ToLower(s)]; ok {
			allow[k] = true
		}
	}
	return redact.Policy{Allow: allow}, nil
}

// printable: valid UTF-8 without control characters.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
