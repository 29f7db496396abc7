// Package manifest owns the manifest, the change a proposal asks for: its validation
// (Validate, the rule every service applies: the coordinator on submission, the
// composer before it signs), its canonical form and digest (Canonical: RFC 8785 JSON
// and the lower-case hex SHA-256 over it, what is signed, stored, negotiated and
// sealed in consensus bundles), the decoding of a stored manifest (Decode), the
// change it asks the world for (Change: what impact classification plans, and what
// is enacted), and the grammar of proposal ids (ValidProposalID, ValidProposalRef).
//
// It holds rules only: no store, no service, no network.
package manifest

import (
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/actions"
	"github.com/decision-fabric/fabric/internal/consent"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/regionkeys"
)

// Limits on a manifest's fields; each violation is INVALID_ARGUMENT naming the field.
const (
	// MaxRegions bounds manifest.regions.
	MaxRegions = 32
	// MaxParamsBytes bounds manifest.parameters (its protobuf size).
	MaxParamsBytes = 256 << 10
	// MaxTargetBytes bounds manifest.target.
	MaxTargetBytes = 256
)

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

// ValidAction reports whether action follows the action name rule: 1-64 lower-case
// letters, digits, '_' or '-', starting with a letter or digit. Whether the action is
// in the catalogue is internal/actions' question (actions.Known).
func ValidAction(action string) bool {
	if action == "" || len(action) > 64 || !isLowerOrDigit(action[0]) {
		return false
	}
	for i := 1; i < len(action); i++ {
		if c := action[i]; !isLowerOrDigit(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// ValidTarget reports whether target follows the target rule: at most MaxTargetBytes
// of printable UTF-8 (no control characters). A manifest's target is also required
// (Validate); a request may leave it for a template's default.
func ValidTarget(target string) bool {
	return len(target) <= MaxTargetBytes && utf8.ValidString(target) &&
		!strings.ContainsFunc(target, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func isLowerOrDigit(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// Validate checks the typed fields of a manifest: action name, target, regions,
// declared impact, the size of parameters and, for an action in the catalogue
// (internal/actions), its parameters against the action's schema (the one the executor
// reads them with), and the consent's shape. An error is INVALID_ARGUMENT naming the
// field ("manifest.parameters.replicas: ...").
func Validate(m *typesv1.Manifest) error {
	if m.GetAction() == "" {
		return invalid("manifest.action is required")
	}
	if !ValidAction(m.GetAction()) {
		return invalid("manifest.action %q: want 1-64 lower-case letters, digits, '_' or '-'", redact.Echo(m.GetAction()))
	}
	t := m.GetTarget()
	if t == "" {
		return invalid("manifest.target is required")
	}
	if !ValidTarget(t) {
		return invalid("manifest.target: want 1-256 printable characters")
	}
	if len(m.GetRegions()) > MaxRegions {
		return invalid("manifest.regions: at most %d", MaxRegions)
	}
	seen := map[string]bool{}
	for i, r := range m.GetRegions() {
		if !regionkeys.ValidRegion(r) {
			return invalid("manifest.regions[%d] %q: want 1-64 of [a-z0-9-]", i, redact.Echo(r))
		}
		if seen[r] {
			return invalid("manifest.regions[%d] %q: duplicate", i, r)
		}
		seen[r] = true
	}
	switch m.GetImpact() {
	case "", policy.ImpactLow, policy.ImpactMedium, policy.ImpactHigh:
	default:
		return invalid("manifest.impact %q: want low, medium or high", redact.Echo(m.GetImpact()))
	}
	if p := m.GetParameters(); p != nil && proto.Size(p) > MaxParamsBytes {
		return invalid("manifest.parameters: larger than %d bytes", MaxParamsBytes)
	}
	// The parameters of a known action must match its schema (the one the executor
	// reads them with). An unknown action is for the tenant's policy to refuse or
	// classify high (unknown_actions), after this shape check.
	if actions.Known(m.GetAction()) {
		if err := actions.Validate(m.GetAction(), m.GetParameters().AsMap()); err != nil {
			return invalid("manifest.%v", err)
		}
	}
	if err := consent.Check(m.GetConsent()); err != nil {
		return invalid("manifest.%v", err)
	}
	return nil
}
