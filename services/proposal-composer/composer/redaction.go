package composer

import (
	"encoding/base64"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/redact"
)

// ConsentScopes maps each consent scope the composer understands to the redact kind it
// keeps. Scopes are the redact kind names, compared case-insensitively, exactly as the
// coordinator reads them when it verifies the consent. Secrets have no scope: they are
// always redacted.
var ConsentScopes = map[string]redact.Kind{
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

// scopeNames lists ConsentScopes' keys, sorted, for error messages.
var scopeNames = slices.Sorted(maps.Keys(ConsentScopes))

// honoured reports whether a consent record counts: it must name who granted it and
// at least one scope. Anything less is ignored (everything is redacted).
//
// The composer does not verify consent.signature: it copies an honoured consent into
// the manifest, and the decision coordinator verifies the signed consent before it
// accepts personal data (P1). A consent the coordinator cannot verify makes it refuse
// the proposal, so an unsigned consent keeps PII out of storage all the same.
func honoured(c *typesv1.Consent) bool {
	return c != nil && c.GetGrantedBy() != "" && len(c.GetScopes()) > 0
}

// policyFor returns the redaction policy of an honoured consent (the zero Policy,
// which allows nothing, otherwise).
func policyFor(c *typesv1.Consent) redact.Policy {
	if !honoured(c) {
		return redact.Policy{}
	}
	allow := map[redact.Kind]bool{}
	for _, s := range c.GetScopes() {
		if k, ok := ConsentScopes[strings.ToLower(s)]; ok {
			allow[k] = true
		}
	}
	return redact.Policy{Allow: allow}
}

// checkConsent validates a consent record that is present.
func checkConsent(c *typesv1.Consent) error {
	if c == nil {
		return nil
	}
	if g := c.GetGrantedBy(); g != "" {
		if len(g) > 256 || !printable(g) {
			return fmt.Errorf("consent.granted_by: want 1-256 printable characters")
		}
		if fs := redact.Find(g); len(fs) > 0 {
			return fmt.Errorf("consent.granted_by: must be a user or policy id, not personal data or a secret (found %s)", fs[0].Kind)
		}
	}
	if len(c.GetScopes()) > len(ConsentScopes) {
		return fmt.Errorf("consent.scopes: at most %d", len(ConsentScopes))
	}
	for i, s := range c.GetScopes() {
		if _, ok := ConsentScopes[strings.ToLower(s)]; !ok {
			return fmt.Errorf("consent.scopes[%d] %q: unknown scope; valid: %s (secrets are always redacted)", i, redact.Echo(s), strings.Join(scopeNames, ", "))
		}
	}
	if sig := c.GetSignature(); sig != "" {
		if len(sig) > 4096 {
			return fmt.Errorf("consent.signature: at most 4096 characters")
		}
		if _, err := base64.StdEncoding.DecodeString(sig); err != nil {
			return fmt.Errorf("consent.signature: want standard base64")
		}
	}
	if ts := c.GetGrantedAt(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return fmt.Errorf("consent.granted_at: %v", err)
		}
	}
	return nil
}

// redactor redacts request parts under one policy and collects the notes.
type redactor struct {
	policy redact.Policy
	notes  []string
}

// value redacts v (JSON-like) and records its notes under prefix ("signals",
// "context", ...), then drops every map entry whose name marks it as a secret, or as
// personal data the policy does not allow. Such an entry holds only a placeholder
// after redaction, and the coordinator's P1 check refuses a manifest that has such a
// name at all, so it is left out; its note says it was there.
func (r *redactor) value(prefix string, v any) any {
	out, notes := redact.Value(v, r.policy)
	for _, n := range notes {
		path, kind, _ := strings.Cut(n, ": ")
		switch {
		case path == "$":
			path = prefix
		case strings.HasPrefix(path, "["):
			path = prefix + path
		default:
			path = prefix + "." + path
		}
		r.notes = append(r.notes, path+": "+kind)
	}
	return r.prune(out)
}

// str redacts a string.
func (r *redactor) str(prefix, s string) string {
	out, _ := r.value(prefix, s).(string)
	return out
}

func (r *redactor) prune(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if kind, ok := redact.SensitiveKey(k); ok && !r.keepsField(kind) {
				delete(t, k)
				continue
			}
			t[k] = r.prune(e)
		}
	case []any:
		for i := range t {
			t[i] = r.prune(t[i])
		}
	}
	return v
}

// keepsField mirrors redact.Policy: a field named for kind keeps its value when the
// policy allows that kind or all named PII fields; never for secrets.
func (r *redactor) keepsField(k redact.Kind) bool {
	return !redact.IsSecretKind(k) && (r.policy.Allow[k] || r.policy.Allow[redact.KindPIIField])
}

// Limits of structured input (signals, model parameters), chosen so that a composed
// manifest stays far inside the coordinator's limits (256 KiB of parameters) and the
// policy engine's (depth 32, 10 000 values).
const (
	maxStructDepth  = 16
	maxStructValues = 1000
	maxStructBytes  = 64 << 10
)

// checkStruct validates open JSON from a request: depth, number of values, finite
// numbers, and every value set.
func checkStruct(s *structpb.Struct) error {
	n := 0
	var walk func(v *structpb.Value, depth int) error
	walk = func(v *structpb.Value, depth int) error {
		n++
		if n > maxStructValues {
			return fmt.Errorf("more than %d values", maxStructValues)
		}
		if depth > maxStructDepth {
			return fmt.Errorf("nested deeper than %d", maxStructDepth)
		}
		switch k := v.GetKind().(type) {
		case *structpb.Value_NumberValue:
			if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
				return fmt.Errorf("numbers must be finite")
			}
		case *structpb.Value_StructValue:
			for _, e := range k.StructValue.GetFields() {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case *structpb.Value_ListValue:
			for _, e := range k.ListValue.GetValues() {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case *structpb.Value_NullValue, *structpb.Value_StringValue, *structpb.Value_BoolValue:
		default:
			return fmt.Errorf("a value without a type")
		}
		return nil
	}
	return walk(structpb.NewStructValue(s), 0)
}

// checkJSONLike applies the same limits to JSON-like data from the model.
func checkJSONLike(v any) error {
	n := 0
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		n++
		if n > maxStructValues {
			return fmt.Errorf("more than %d values", maxStructValues)
		}
		if depth > maxStructDepth {
			return fmt.Errorf("nested deeper than %d", maxStructDepth)
		}
		switch t := v.(type) {
		case map[string]any:
			for _, e := range t {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range t {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case float64:
			if math.IsNaN(t) || math.IsInf(t, 0) {
				return fmt.Errorf("numbers must be finite")
			}
		}
		return nil
	}
	return walk(v, 0)
}
