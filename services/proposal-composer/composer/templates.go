package composer

import (
	_ "embed" // the default templates.yaml
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/regionkeys"

	"google.golang.org/protobuf/types/known/structpb"

	composerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/composer/v1"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/redact"
)

// DefaultTemplatesYAML is the embedded default template set: a copy of
// services/proposal-composer/templates.yaml, refreshed by `go generate` (a test fails
// when the two differ).
//
//go:generate cp ../templates.yaml templates.yaml
//go:embed templates.yaml
var DefaultTemplatesYAML []byte

// Limits of a templates file.
const (
	maxTemplatesFileBytes = 1 << 20
	maxTemplates          = 256
	maxKeywords           = 64
	maxKeywordWords       = 8
	maxDescription        = 1024
	maxParamsBytes        = 64 << 10
	maxRegions            = manifest.MaxRegions
	maxTarget             = manifest.MaxTargetBytes
)

// ReservedParameter is the manifest parameter the composer writes its provenance to
// (template, redacted context and signals, model answer); templates may not use it.
const ReservedParameter = "provenance"

var (
	reTemplateID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	reKeyword    = regexp.MustCompile(`^[a-z0-9]+( [a-z0-9]+)*$`)
)

// Template is one validated template.
type Template struct {
	ID             string
	Description    string
	Action         string
	Impact         string
	Keywords       []string
	DefaultTarget  string
	DefaultRegions []string
	// Parameters are the default manifest parameters, JSON-like (numbers are float64).
	Parameters      map[string]any
	ModelOverrides  map[string]Bounds
	SignalOverrides map[string]Bounds

	// keywordWords[i] is Keywords[i] split into words.
	keywordWords [][]string
}

// Bounds restrict a numeric override; they are ignored for other types.
type Bounds struct {
	Min     *float64 `yaml:"min"`
	Max     *float64 `yaml:"max"`
	Integer bool     `yaml:"integer"`
}

// check reports why v (a JSON-like value) may not replace def, or "" if it may.
func (b Bounds) check(def, v any) string {
	if kind(def) != kind(v) {
		return fmt.Sprintf("want %s, got %s", kind(def), kind(v))
	}
	f, ok := v.(float64)
	if !ok {
		return ""
	}
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "not a finite number"
	case b.Integer && f != math.Trunc(f):
		return fmt.Sprintf("%v is not an integer", f)
	case b.Min != nil && f < *b.Min:
		return fmt.Sprintf("%v is below the minimum %v", f, *b.Min)
	case b.Max != nil && f > *b.Max:
		return fmt.Sprintf("%v is above the maximum %v", f, *b.Max)
	}
	return ""
}

// kind names the JSON type of a JSON-like value.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// Templates is a validated, ordered template set. Order matters: it breaks ties.
type Templates struct {
	list []*Template
	byID map[string]*Template
}

// List returns the templates in file order. The caller must not modify them.
func (ts *Templates) List() []*Template { return ts.list }

// Get returns the template with id.
func (ts *Templates) Get(id string) (*Template, bool) {
	t, ok := ts.byID[id]
	return t, ok
}

// IDs returns the template ids in file order.
func (ts *Templates) IDs() []string {
	ids := make([]string, len(ts.list))
	for i, t := range ts.list {
		ids[i] = t.ID
	}
	return ids
}

type templatesFile struct {
	Templates []templateFile `yaml:"templates"`
}

type templateFile struct {
	ID              string            `yaml:"id"`
	Description     string            `yaml:"description"`
	Action          string            `yaml:"action"`
	Impact          string            `yaml:"impact"`
	Keywords        []string          `yaml:"keywords"`
	DefaultTarget   string            `yaml:"default_target"`
	DefaultRegions  []string          `yaml:"default_regions"`
	Parameters      map[string]any    `yaml:"parameters"`
	ModelOverrides  map[string]Bounds `yaml:"model_overrides"`
	SignalOverrides map[string]Bounds `yaml:"signal_overrides"`
}

// DefaultTemplates returns the embedded templates.yaml, parsed. It panics only if the
// embedded file is invalid, which a test rules out.
func DefaultTemplates() *Templates {
	ts, err := ParseTemplates(DefaultTemplatesYAML)
	if err != nil {
		panic(fmt.Sprintf("composer: embedded templates.yaml: %v", err))
	}
	return ts
}

// LoadTemplates reads and parses a templates file.
func LoadTemplates(path string) (*Templates, error) {
	raw, err := config.ReadBounded(path, maxTemplatesFileBytes, "composer: templates")
	if err != nil {
		return nil, err
	}
	ts, err := ParseTemplates(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ts, nil
}

// ParseTemplates decodes and validates a templates file strictly: unknown keys, a
// second YAML document, duplicate ids, malformed ids, actions, keywords, regions or
// targets, parameters that are not JSON (NaN, non-string keys) or larger than 64 KiB,
// the reserved parameter "provenance", and overrides of parameters without a default
// are errors. It never panics.
func ParseTemplates(raw []byte) (*Templates, error) {
	var f templatesFile
	if err := config.DecodeStrict(raw, maxTemplatesFileBytes, "templates", &f); err != nil {
		return nil, err
	}
	return f.validate()
}

func (f *templatesFile) validate() (*Templates, error) {
	if len(f.Templates) == 0 {
		return nil, errors.New("templates: at least one template is required")
	}
	if len(f.Templates) > maxTemplates {
		return nil, fmt.Errorf("templates: at most %d", maxTemplates)
	}
	ts := &Templates{byID: map[string]*Template{}}
	for i, tf := range f.Templates {
		t, err := tf.validate()
		if err != nil {
			if tf.ID != "" && reTemplateID.MatchString(tf.ID) {
				return nil, fmt.Errorf("templates[%d] (%s): %w", i, tf.ID, err)
			}
			return nil, fmt.Errorf("templates[%d]: %w", i, err)
		}
		if _, dup := ts.byID[t.ID]; dup {
			return nil, fmt.Errorf("templates[%d]: id %q: duplicate", i, t.ID)
		}
		ts.byID[t.ID] = t
		ts.list = append(ts.list, t)
	}
	return ts, nil
}

func (tf *templateFile) validate() (*Template, error) {
	if !reTemplateID.MatchString(tf.ID) {
		return nil, fmt.Errorf("id %q: want 1-64 of [a-z0-9-], starting with a letter or digit", redact.Truncate(tf.ID, redact.EchoRunes))
	}
	if strings.TrimSpace(tf.Description) == "" {
		return nil, errors.New("description is required")
	}
	if len(tf.Description) > maxDescription {
		return nil, fmt.Errorf("description: at most %d bytes", maxDescription)
	}
	// The action name follows manifest.ValidAction and regions regionkeys.ValidRegion,
	// so that every composed manifest passes manifest.Validate.
	if !manifest.ValidAction(tf.Action) {
		return nil, fmt.Errorf("action %q: want 1-64 lower-case letters, digits, '_' or '-'", redact.Truncate(tf.Action, redact.EchoRunes))
	}
	switch tf.Impact {
	case "low", "medium", "high":
	default:
		return nil, fmt.Errorf("impact %q: want low, medium or high", redact.Truncate(tf.Impact, redact.EchoRunes))
	}
	t := &Template{
		ID: tf.ID, Description: strings.TrimSpace(tf.Description), Action: tf.Action, Impact: tf.Impact,
		DefaultTarget: tf.DefaultTarget, ModelOverrides: map[string]Bounds{}, SignalOverrides: map[string]Bounds{},
	}
	if len(tf.Keywords) > maxKeywords {
		return nil, fmt.Errorf("keywords: at most %d", maxKeywords)
	}
	for i, k := range tf.Keywords {
		norm := strings.Join(strings.Fields(strings.ToLower(k)), " ")
		if !reKeyword.MatchString(norm) {
			return nil, fmt.Errorf("keywords[%d] %q: want words of lower-case letters and digits separated by spaces", i, redact.Truncate(k, redact.EchoRunes))
		}
		words := strings.Split(norm, " ")
		if len(words) > maxKeywordWords {
			return nil, fmt.Errorf("keywords[%d] %q: at most %d words", i, redact.Truncate(k, redact.EchoRunes), maxKeywordWords)
		}
		if slices.Contains(t.Keywords, norm) {
			return nil, fmt.Errorf("keywords[%d] %q: duplicate", i, redact.Truncate(k, redact.EchoRunes))
		}
		t.Keywords = append(t.Keywords, norm)
		t.keywordWords = append(t.keywordWords, words)
	}
	if tf.DefaultTarget != "" {
		if err := checkTarget(tf.DefaultTarget); err != nil {
			return nil, fmt.Errorf("default_target: %w", err)
		}
		if fs := redact.Find(tf.DefaultTarget); len(fs) > 0 {
			return nil, fmt.Errorf("default_target: looks like sensitive data (%s)", fs[0].Kind)
		}
	}
	regions, err := checkRegions(tf.DefaultRegions)
	if err != nil {
		return nil, fmt.Errorf("default_regions%w", err)
	}
	t.DefaultRegions = regions

	params, err := jsonLike(tf.Parameters)
	if err != nil {
		return nil, fmt.Errorf("parameters: %w", err)
	}
	t.Parameters = params
	if _, ok := params[ReservedParameter]; ok {
		return nil, fmt.Errorf("parameters: %q is reserved for the composer's provenance", ReservedParameter)
	}
	if _, err := structpb.NewStruct(params); err != nil {
		return nil, fmt.Errorf("parameters: %w", err)
	}
	if b, _ := json.Marshal(params); len(b) > maxParamsBytes {
		return nil, fmt.Errorf("parameters: larger than %d bytes", maxParamsBytes)
	}
	// A template's own parameters are manifest content: they must not hold secrets or
	// PII, or every manifest composed from it would be refused by the coordinator.
	if _, notes := redact.Value(params, redact.Policy{}); len(notes) > 0 {
		return nil, fmt.Errorf("parameters: sensitive data at %s", strings.Join(notes, ", "))
	}
	for _, o := range []struct {
		name string
		in   map[string]Bounds
		out  map[string]Bounds
	}{{"model_overrides", tf.ModelOverrides, t.ModelOverrides}, {"signal_overrides", tf.SignalOverrides, t.SignalOverrides}} {
		for name, b := range o.in {
			def, ok := params[name]
			if !ok {
				return nil, fmt.Errorf("%s.%s: no default in parameters (an override replaces a default)", o.name, redact.Truncate(name, redact.EchoRunes))
			}
			if b.Min != nil && b.Max != nil && *b.Min > *b.Max {
				return nil, fmt.Errorf("%s.%s: min %v is above max %v", o.name, name, *b.Min, *b.Max)
			}
			for _, x := range []*float64{b.Min, b.Max} {
				if x != nil && (math.IsNaN(*x) || math.IsInf(*x, 0)) {
					return nil, fmt.Errorf("%s.%s: bounds must be finite", o.name, name)
				}
			}
			if reason := b.check(def, def); reason != "" {
				return nil, fmt.Errorf("%s.%s: the default does not meet the bounds: %s", o.name, name, reason)
			}
			o.out[name] = b
		}
	}
	return t, nil
}

// jsonLike converts decoded YAML into JSON-like data (map[string]any, []any, float64,
// string, bool, nil) through encoding/json, which rejects what JSON cannot hold
// (non-string keys, NaN, infinities).
func jsonLike(m map[string]any) (map[string]any, error) {
	if m == nil {
		return map[string]any{}, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return out, nil
}

// checkTarget applies the manifest's target rule (manifest.ValidTarget): 1-256
// printable characters.
func checkTarget(t string) error {
	if !manifest.ValidTarget(t) {
		return errors.New("want 1-256 printable characters")
	}
	return nil
}

// checkRegions validates regions as the coordinator does (1-64 of [a-z0-9-], not
// starting with '-', no duplicates, at most 32) and refuses names that look like
// personal data (a region is never personal data; "555-123-4567" is a phone number).
// Errors start with "[i] ..." or ": ..." so callers prefix the field name.
func checkRegions(regions []string) ([]string, error) {
	if len(regions) > maxRegions {
		return nil, fmt.Errorf(": at most %d", maxRegions)
	}
	seen := map[string]bool{}
	for i, r := range regions {
		if !regionkeys.ValidRegion(r) {
			return nil, fmt.Errorf("[%d]: want 1-64 of [a-z0-9-], starting with a letter or digit", i)
		}
		if fs := redact.Find(r); len(fs) > 0 {
			return nil, fmt.Errorf("[%d]: not a region name: it looks like personal data (%s)", i, fs[0].Kind)
		}
		if seen[r] {
			return nil, fmt.Errorf("[%d] %q: duplicate", i, r)
		}
		seen[r] = true
	}
	return slices.Clone(regions), nil
}

// Proto converts the template for GET /templates.
func (t *Template) Proto() *composerv1.Template {
	params, _ := structpb.NewStruct(t.Parameters) // validated at load
	return &composerv1.Template{
		Id: t.ID, Description: t.Description, Action: t.Action, Keywords: slices.Clone(t.Keywords), Impact: t.Impact,
		DefaultTarget: t.DefaultTarget, DefaultRegions: slices.Clone(t.DefaultRegions), Parameters: params,
		ModelOverrides: sortedKeys(t.ModelOverrides), SignalOverrides: sortedKeys(t.SignalOverrides),
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
