package actions

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		action string
		params string // JSON
		nan    string // when set, this parameter is NaN (JSON cannot say it)
		field  string // "" = valid
		msg    string
	}{
		"scale to":              {action: Scale, params: `{"replicas":40}`},
		"scale to zero":         {action: Scale, params: `{"replicas":0}`},
		"scale to the maximum":  {action: Scale, params: `{"replicas":1000}`},
		"scale by":              {action: Scale, params: `{"replicas_delta":-3}`},
		"annotations are kept":  {action: Scale, params: `{"replicas":3,"provenance":{"template":"x"},"ticket":"OPS-1"}`},
		"cost hint":             {action: Scale, params: `{"replicas":3,"monthly_cost":120.5}`},
		"too many":              {action: Scale, params: `{"replicas":5000}`, field: "parameters.replicas", msg: "must be an integer in [0, 1000], not 5000"},
		"huge":                  {action: Scale, params: `{"replicas":1e308}`, field: "parameters.replicas", msg: "not 1e+308"},
		"negative":              {action: Scale, params: `{"replicas":-1}`, field: "parameters.replicas", msg: "not -1"},
		"fraction":              {action: Scale, params: `{"replicas":2.5}`, field: "parameters.replicas", msg: "must be an integer"},
		"string":                {action: Scale, params: `{"replicas":"12"}`, field: "parameters.replicas", msg: "not a string"},
		"bool":                  {action: Scale, params: `{"replicas":true}`, field: "parameters.replicas", msg: "not a boolean"},
		"null":                  {action: Scale, params: `{"replicas":null}`, field: "parameters.replicas", msg: "not null"},
		"nan":                   {action: Scale, params: `{}`, nan: "replicas", field: "parameters.replicas", msg: "not NaN"},
		"nan delta":             {action: Scale, params: `{}`, nan: "replicas_delta", field: "parameters.replicas_delta", msg: "not NaN"},
		"huge delta":            {action: Scale, params: `{"replicas_delta":1e6}`, field: "parameters.replicas_delta", msg: "[-1000, 1000]"},
		"neither (submission)":  {action: Scale, params: `{}`},
		"both":                  {action: Scale, params: `{"replicas":3,"replicas_delta":1}`, field: "parameters.replicas_delta", msg: "exactly one"},
		"negative cost":         {action: Scale, params: `{"replicas":3,"monthly_cost":-5}`, field: "parameters.monthly_cost", msg: "must be a number in [0, 1e+12]"},
		"reduce default":        {action: ReduceCost, params: `{}`},
		"reduce by 3":           {action: ReduceCost, params: `{"replicas_delta":-3}`},
		"reduce that adds":      {action: ReduceCost, params: `{"replicas_delta":900}`, field: "parameters.replicas_delta", msg: "[-1000, -1]"},
		"configure":             {action: Configure, params: `{"config":{"flag":true}}`},
		"configure needs it":    {action: Configure, params: `{}`, field: "parameters.config", msg: "is required for configure"},
		"configure with string": {action: Configure, params: `{"config":"x"}`, field: "parameters.config", msg: "must be an object, not a string"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var params map[string]any
			require.NoError(t, json.Unmarshal([]byte(tc.params), &params))
			if tc.nan != "" {
				params[tc.nan] = math.NaN()
			}
			err := Validate(tc.action, params)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.field, fe.Field)
			require.Contains(t, err.Error(), tc.msg)
			require.Contains(t, err.Error(), tc.field+": ", "the message starts with the field")
		})
	}
}

func TestUnknownActions(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"drop-database", "wipe", "shutdown", "", "Scale"} {
		err := Validate(a, map[string]any{"replicas": 3.0})
		require.ErrorIs(t, err, ErrUnknownAction, a)
		require.Contains(t, err.Error(), "known: configure, reduce_cost, scale")
		require.False(t, Known(a))
	}
	require.Equal(t, []string{Configure, ReduceCost, Scale}, Names())
	for _, a := range Names() {
		require.True(t, Known(a))
		s, ok := Lookup(a)
		require.True(t, ok)
		require.Equal(t, a, s.Name)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	p, err := Parse(Scale, map[string]any{"replicas": 40.0})
	require.NoError(t, err)
	require.Equal(t, 40, *p.Replicas)
	require.Nil(t, p.ReplicasDelta)

	p, err = Parse(ReduceCost, nil)
	require.NoError(t, err)
	require.Equal(t, -1, *p.ReplicasDelta, "reduce_cost removes one replica by default")

	p, err = Parse(Configure, map[string]any{"config": map[string]any{"a": 1.0}})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"a": 1.0}, p.Config)

	_, err = Parse(Scale, map[string]any{"replicas": 2.5})
	require.False(t, errors.Is(err, ErrUnknownAction))

	// A scale may be submitted without a count, but not made.
	require.NoError(t, Validate(Scale, nil))
	_, err = Parse(Scale, nil)
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "parameters: scale needs exactly one of parameters.replicas, parameters.replicas_delta", err.Error())
}

// FuzzValidate: any JSON parameters either validate, and then Parse's typed values are
// in range, or fail with a FieldError naming a parameters field.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{`{"replicas":40}`, `{"replicas":1e308}`, `{"replicas_delta":-1}`, `{"config":{}}`, `{"replicas":"12"}`, `{}`} {
		f.Add(Scale, s)
	}
	f.Add(ReduceCost, `{"replicas_delta":-2}`)
	f.Add(Configure, `{"config":{"a":[1,2]}}`)
	f.Fuzz(func(t *testing.T, action, raw string) {
		var params map[string]any
		if json.Unmarshal([]byte(raw), &params) != nil {
			return
		}
		p, err := Parse(action, params)
		if err != nil {
			var fe *FieldError
			if !errors.Is(err, ErrUnknownAction) && !errors.As(err, &fe) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if p.Replicas != nil && (*p.Replicas < 0 || *p.Replicas > MaxReplicas) {
			t.Fatalf("replicas %d out of range", *p.Replicas)
		}
		if p.ReplicasDelta != nil && (*p.ReplicasDelta < -MaxReplicas || *p.ReplicasDelta > MaxReplicas) {
			t.Fatalf("replicas_delta %d out of range", *p.ReplicasDelta)
		}
	})
}
