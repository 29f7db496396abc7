// Package actions is the catalogue of the changes the fabric knows how to make: each
// action's name and the schema of its parameters. It is the one place both sides read:
// the coordinator validates a manifest against it at submission (so a bad value is a
// 400 naming the field, and nothing is stored), and the executor (internal/world) reads
// the parameters through [Parse], so what is accepted is exactly what can be enacted
// and no value is reinterpreted (clamped, truncated, ignored) on the way.
//
// Parameters a schema does not declare are annotations (the composer's "provenance",
// a ticket reference...): they are kept, scanned for personal data like every field,
// and visible to policy rules, but they never change what is enacted.
package actions

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Action names.
const (
	Scale      = "scale"
	ReduceCost = "reduce_cost"
	Configure  = "configure"
)

// MaxReplicas bounds the replica count of a target.
const MaxReplicas = 1000

// maxMonthlyCost bounds the monthly_cost hint of a scale (currency units per month).
const maxMonthlyCost = 1e12

// Type is the JSON type of a parameter.
type Type int

// The parameter types.
const (
	// Integer is a JSON number without a fractional part, in [Min, Max].
	Integer Type = iota + 1
	// Number is a finite JSON number in [Min, Max].
	Number
	// Object is a JSON object.
	Object
)

// Param is one declared parameter.
type Param struct {
	Name     string
	Type     Type
	Min, Max float64 // Integer and Number
	// Doc says what the parameter means, for people.
	Doc string
}

// Schema is an action's parameter schema.
type Schema struct {
	Name string
	// Doc says what the action does, for people.
	Doc    string
	Params []Param
	// Required lists parameters that must be present.
	Required []string
	// OneOf, when set, lists parameters of which at most one may be given, and
	// exactly one for the change to be made: a manifest may leave them all out at
	// submission (the API's own example scales without a count), but such a change
	// cannot be planned, so it is classified high and its dry run fails.
	OneOf []string
}

// catalogue is every known action, by name.
var catalogue = map[string]*Schema{
	Scale: {
		Name: Scale,
		Doc:  "set a target's replica count, or change it by a delta",
		Params: []Param{
			{Name: "replicas", Type: Integer, Min: 0, Max: MaxReplicas, Doc: "the replica count to set"},
			{Name: "replicas_delta", Type: Integer, Min: -MaxReplicas, Max: MaxReplicas, Doc: "the change in replicas"},
			{Name: "monthly_cost", Type: Number, Min: 0, Max: maxMonthlyCost, Doc: "the expected monthly cost, read by regions with a cost ceiling"},
		},
		OneOf: []string{"replicas", "replicas_delta"},
	},
	ReduceCost: {
		Name: ReduceCost,
		Doc:  "remove replicas a target does not need (never below one)",
		Params: []Param{
			{Name: "replicas_delta", Type: Integer, Min: -MaxReplicas, Max: -1, Doc: "the replicas to remove, negative (default -1)"},
		},
	},
	Configure: {
		Name:     Configure,
		Doc:      "merge settings into a target's configuration",
		Params:   []Param{{Name: "config", Type: Object, Doc: "the settings to merge"}},
		Required: []string{"config"},
	},
}

// names are the known actions, sorted.
var names = func() []string {
	out := make([]string, 0, len(catalogue))
	for n := range catalogue {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}()

// Names lists the known actions, sorted.
func Names() []string { return slices.Clone(names) }

// Known reports whether action is in the catalogue.
func Known(action string) bool {
	_, ok := catalogue[action]
	return ok
}

// Lookup returns the schema of action.
func Lookup(action string) (*Schema, bool) {
	s, ok := catalogue[action]
	return s, ok
}

// ErrUnknownAction marks an action that is not in the catalogue.
var ErrUnknownAction = errors.New("unknown action")

// FieldError is a parameter that does not match its schema. Field is the path from the
// manifest, "parameters.replicas"; the message never quotes a string value (it may be
// long, or personal data).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// UnknownActionError is the error for an action outside the catalogue: it names the
// action and the known ones, and wraps ErrUnknownAction.
func UnknownActionError(action string) error {
	return fmt.Errorf("%w %q (known: %s)", ErrUnknownAction, clip(action), strings.Join(names, ", "))
}

// Params are the typed parameters of a valid change; fields an action does not take
// are zero.
type Params struct {
	// Replicas is set for a scale to an absolute count.
	Replicas *int
	// ReplicasDelta is set for a scale by a delta and for reduce_cost (-1 when the
	// manifest gives none).
	ReplicasDelta *int
	// Config is configure's settings.
	Config map[string]any
}

// Validate checks params (JSON-like values, as structpb.Struct.AsMap returns them)
// against action's schema, as submission does. It returns an error wrapping
// ErrUnknownAction for an action outside the catalogue, else a *FieldError for the
// first parameter (in schema order) that does not match, else nil.
func Validate(action string, params map[string]any) error {
	_, err := parse(action, params, false)
	return err
}

// Parse validates params like [Validate], also requiring what the change needs to be
// made (one of a OneOf group), and returns them typed: what an executor reads.
func Parse(action string, params map[string]any) (Params, error) {
	return parse(action, params, true)
}

func parse(action string, params map[string]any, complete bool) (Params, error) {
	s, ok := catalogue[action]
	if !ok {
		return Params{}, UnknownActionError(action)
	}
	var out Params
	for i := range s.Params {
		p := &s.Params[i]
		v, present := params[p.Name]
		if !present {
			if slices.Contains(s.Required, p.Name) {
				return Params{}, &FieldError{Field: "parameters." + p.Name, Msg: "is required for " + s.Name}
			}
			continue
		}
		if err := p.check(v); err != nil {
			return Params{}, err
		}
		switch p.Name {
		case "replicas":
			out.Replicas = ptr(int(v.(float64)))
		case "replicas_delta":
			out.ReplicasDelta = ptr(int(v.(float64)))
		case "config":
			out.Config = v.(map[string]any)
		}
	}
	if len(s.OneOf) > 0 {
		var given []string
		for _, n := range s.OneOf {
			if _, ok := params[n]; ok {
				given = append(given, "parameters."+n)
			}
		}
		if len(given) > 1 || complete && len(given) == 0 {
			field := "parameters"
			if len(given) > 1 {
				field = given[1]
			}
			return Params{}, &FieldError{Field: field, Msg: fmt.Sprintf("%s needs exactly one of parameters.%s", s.Name, strings.Join(s.OneOf, ", parameters."))}
		}
	}
	if s.Name == ReduceCost && out.ReplicasDelta == nil {
		out.ReplicasDelta = ptr(-1)
	}
	return out, nil
}

// check reports whether v is a valid value of p.
func (p *Param) check(v any) error {
	field := "parameters." + p.Name
	switch p.Type {
	case Integer, Number:
		f, ok := v.(float64)
		want := "a number"
		if p.Type == Integer {
			want = "an integer"
		}
		want += fmt.Sprintf(" in [%s, %s]", num(p.Min), num(p.Max))
		switch {
		case !ok:
			return &FieldError{Field: field, Msg: fmt.Sprintf("must be %s, not %s", want, typeName(v))}
		case math.IsNaN(f) || math.IsInf(f, 0):
			return &FieldError{Field: field, Msg: fmt.Sprintf("must be %s, not %s", want, num(f))}
		case p.Type == Integer && f != math.Trunc(f), f < p.Min, f > p.Max:
			return &FieldError{Field: field, Msg: fmt.Sprintf("must be %s, not %s", want, num(f))}
		}
	case Object:
		if _, ok := v.(map[string]any); !ok {
			return &FieldError{Field: field, Msg: "must be an object, not " + typeName(v)}
		}
	}
	return nil
}

// typeName is the JSON type of v.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case float64, float32, int, int64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// num formats a number for a message: short, whatever its size.
func num(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// clip bounds an echoed action name (the coordinator's validator already limits it to
// 64 characters of [a-z0-9_-]).
func clip(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}

func ptr[T any](v T) *T { return &v }
