package composer

import (
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/decision-fabric/fabric/internal/redact"
)

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
