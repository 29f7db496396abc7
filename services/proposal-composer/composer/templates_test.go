package composer

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/model"
)

func TestEmbeddedTemplatesMatchServiceFile(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("../templates.yaml")
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, DefaultTemplatesYAML),
		"composer/templates.yaml is stale: run `go generate ./services/proposal-composer/composer` after editing services/proposal-composer/templates.yaml")
}

func TestDefaultTemplates(t *testing.T) {
	t.Parallel()
	ts := DefaultTemplates()
	require.Equal(t, []string{"scale-out", "scale-in", "reduce-cost", "configure"}, ts.IDs())
	for _, tpl := range ts.List() {
		require.NotEmpty(t, tpl.Keywords, tpl.ID)
		require.NotEmpty(t, tpl.Parameters, tpl.ID)
		p := tpl.Proto()
		require.Equal(t, tpl.ID, p.GetId())
		require.Equal(t, tpl.Keywords, p.GetKeywords())
	}
	rc, ok := ts.Get("reduce-cost")
	require.True(t, ok)
	require.Equal(t, "default-service", rc.DefaultTarget, "the spec's example names no target")
	require.Equal(t, map[string]any{"replicas_delta": -1.0}, rc.Parameters)
}

func TestLoadTemplates(t *testing.T) {
	t.Parallel()
	ts, err := LoadTemplates("../templates.yaml")
	require.NoError(t, err)
	require.Len(t, ts.List(), 4)
	_, err = LoadTemplates("does-not-exist.yaml")
	require.Error(t, err)
}

func TestParseTemplatesErrors(t *testing.T) {
	t.Parallel()
	const ok = `
templates:
  - id: a
    description: d
    action: scale
    impact: low
    keywords: [x]
    parameters: {replicas_delta: 1}
`
	_, err := ParseTemplates([]byte(ok))
	require.NoError(t, err, "the base case parses")

	for _, c := range []struct{ name, yaml, want string }{
		{"empty", ``, "empty file"},
		{"no templates", `templates: []`, "at least one template"},
		{"unknown key", `templates: [{id: a, description: d, action: scale, impact: low, colour: red}]`, "field colour not found"},
		{"second document", ok + "\n---\ntemplates: []\n", "exactly one YAML document"},
		{"bad id", `templates: [{id: A_B, description: d, action: scale, impact: low}]`, `id "A_B"`},
		{"duplicate id", `templates: [{id: a, description: d, action: scale, impact: low}, {id: a, description: d, action: scale, impact: low}]`, "duplicate"},
		{"no description", `templates: [{id: a, action: scale, impact: low}]`, "description is required"},
		{"bad action", `templates: [{id: a, description: d, action: "Scale Up", impact: low}]`, "action"},
		{"bad impact", `templates: [{id: a, description: d, action: scale, impact: huge}]`, `impact "huge"`},
		{"bad keyword", `templates: [{id: a, description: d, action: scale, impact: low, keywords: ["c++"]}]`, "keywords[0]"},
		{"duplicate keyword", `templates: [{id: a, description: d, action: scale, impact: low, keywords: [cost, " COST "]}]`, "duplicate"},
		{"bad region", `templates: [{id: a, description: d, action: scale, impact: low, default_regions: [EU_West]}]`, "default_regions[0]"},
		{"phone as region", `templates: [{id: a, description: d, action: scale, impact: low, default_regions: [555-123-4567]}]`, "personal data"},
		{"duplicate region", `templates: [{id: a, description: d, action: scale, impact: low, default_regions: [eu, eu]}]`, "duplicate"},
		{"target with control char", "templates: [{id: a, description: d, action: scale, impact: low, default_target: \"x\\ty\"}]", "default_target"},
		{"email as target", `templates: [{id: a, description: d, action: scale, impact: low, default_target: ops@example.com}]`, "sensitive"},
		{"reserved parameter", `templates: [{id: a, description: d, action: scale, impact: low, parameters: {provenance: 1}}]`, "reserved"},
		{"NaN parameter", `templates: [{id: a, description: d, action: scale, impact: low, parameters: {x: .nan}}]`, "not JSON"},
		{"non-string key", `templates: [{id: a, description: d, action: scale, impact: low, parameters: {x: {1: 2}}}]`, "not JSON"},
		{"secret parameter", `templates: [{id: a, description: d, action: scale, impact: low, parameters: {password: hunter2}}]`, "sensitive data"},
		{"override without default", `templates: [{id: a, description: d, action: scale, impact: low, model_overrides: {replicas: {}}}]`, "no default"},
		{"min above max", `templates: [{id: a, description: d, action: scale, impact: low, parameters: {n: 1}, model_overrides: {n: {min: 2, max: 1}}}]`, "above max"},
		{"default out of bounds", `templates: [{id: a, description: d, action: scale, impact: low, parameters: {n: 5}, signal_overrides: {n: {max: 1}}}]`, "does not meet"},
		{"unknown bound", `templates: [{id: a, description: d, action: scale, impact: low, parameters: {n: 5}, signal_overrides: {n: {step: 1}}}]`, "field step not found"},
		{"not yaml", `templates: [`, "templates:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTemplates([]byte(c.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestBoundsCheck(t *testing.T) {
	t.Parallel()
	one, ten := 1.0, 10.0
	b := Bounds{Min: &one, Max: &ten, Integer: true}
	require.Empty(t, b.check(1.0, 3.0))
	require.Contains(t, b.check(1.0, 0.0), "below the minimum")
	require.Contains(t, b.check(1.0, 11.0), "above the maximum")
	require.Contains(t, b.check(1.0, 2.5), "not an integer")
	require.Contains(t, b.check(1.0, "2"), "want number, got string")
	require.Empty(t, Bounds{}.check(map[string]any{}, map[string]any{"a": 1.0}))
	require.Contains(t, Bounds{}.check(map[string]any{}, []any{}), "want object, got list")
}

func TestSelect(t *testing.T) {
	t.Parallel()
	ts := DefaultTemplates()
	sim := model.NewSimulated()
	suggest := func(text string, hints map[string]float64) (*model.Suggestion, map[string]any) {
		s, err := sim.Suggest(t.Context(), model.SuggestRequest{TenantID: "t1", Context: text, MetricHints: hints})
		require.NoError(t, err)
		p, err := jsonLike(s.Parameters)
		require.NoError(t, err)
		return &s, p
	}
	for _, c := range []struct {
		name, id, context string
		hints             map[string]float64
		noModel           bool
		want, by          string
		matched           []string
		code              codes.Code
	}{
		{name: "spec example", context: "reduce cost", want: "reduce-cost", by: SelectedByKeywords, matched: []string{"reduce cost", "cost"}},
		{name: "case and punctuation", context: "Please SAVE money!", want: "reduce-cost", by: SelectedByKeywords},
		{name: "scale", context: "scale serviceX in eu-west", want: "scale-out", by: SelectedByKeywords},
		{name: "latency", context: "p99 latency is too high", want: "scale-out", by: SelectedByKeywords},
		{name: "phrase beats word", context: "scale down the idle workers", want: "scale-in", by: SelectedByKeywords, matched: []string{"scale down", "idle"}},
		{name: "configure", context: "turn on the feature flag for checkout", want: "configure", by: SelectedByKeywords},
		{name: "words, not substrings", context: "the configurator is idle-ish", want: "scale-in", by: SelectedByKeywords, matched: []string{"idle"}},
		{name: "tie broken by the model", context: "idle capacity costs money", want: "reduce-cost", by: SelectedByKeywords},
		{name: "tie without a model goes to the first listed", context: "idle capacity costs money", noModel: true, want: "scale-in", by: SelectedByKeywords},
		{name: "model: pressure", context: "what now?", hints: map[string]float64{"cpu": 0.95}, want: "scale-out", by: SelectedByModel},
		{name: "model: idle picks scale-in by sign", context: "what now?", hints: map[string]float64{"cpu": 0.05}, want: "scale-in", by: SelectedByModel},
		{name: "explicit id wins", id: "configure", context: "reduce cost", want: "configure", by: SelectedByTemplateID},
		{name: "unknown id", id: "nope", context: "reduce cost", code: codes.InvalidArgument},
		{name: "nothing matches", context: "hello world", code: codes.InvalidArgument},
		{name: "nothing matches, model down", context: "hello world", noModel: true, code: codes.Unavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			var sug *model.Suggestion
			var params map[string]any
			if !c.noModel {
				sug, params = suggest(c.context, c.hints)
			}
			sel, err := ts.Select(c.id, c.context, sug, params)
			if c.code != codes.OK {
				require.Equal(t, c.code, status.Code(err), "%v", err)
				require.Contains(t, err.Error(), "scale-out, scale-in, reduce-cost, configure", "errors list the valid ids")
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, sel.Template.ID)
			require.Equal(t, c.by, sel.By)
			if c.matched != nil {
				require.Equal(t, c.matched, sel.Matched)
			}
		})
	}
}

func TestWordsAndPhrases(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"cpu", "bound", "on", "svc", "1"}, words("CPU-bound on svc_1"))
	require.Equal(t, []string{"pay", "by", "now"}, words("pay by <REDACTED:card> now<REDACTED>"))
	require.True(t, containsPhrase(words("please Scale  Down now"), []string{"scale", "down"}))
	require.False(t, containsPhrase(words("scale the thing down"), []string{"scale", "down"}))
	require.False(t, containsPhrase(words("scale"), []string{"scale", "down"}))
}
