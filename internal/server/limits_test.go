package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
)

// nested is JSON nesting depth objects: {"a":{"a":...1...}}.
func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
}

func submit(t *testing.T, params string) *coordinatorv1.SubmitProposalRequest {
	t.Helper()
	req := &coordinatorv1.SubmitProposalRequest{}
	body := `{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":` + params + `}}`
	require.NoError(t, protojson.UnmarshalOptions{RecursionLimit: 100_000}.Unmarshal([]byte(body), req))
	return req
}

func TestCheckJSONLimits(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		params, want string
	}{
		"flat":             {`{"replicas":12}`, ""},
		"depth 32":         {nested(32), ""},
		"depth 33":         {nested(33), "manifest.parameters: nesting depth exceeds 32"},
		"depth 5000":       {nested(5000), "manifest.parameters: nesting depth exceeds 32"},
		"arrays count":     {`{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, "manifest.parameters: nesting depth exceeds 32"},
		"values":           {`{"a":[` + strings.Repeat("1,", MaxJSONValues) + `1]}`, "manifest.parameters: more than 10000 values"},
		"values just fits": {`{"a":[` + strings.Repeat("1,", MaxJSONValues-3) + `1]}`, ""},
		"long string":      {`{"a":"` + strings.Repeat("x", MaxJSONString+1) + `"}`, "manifest.parameters: a string longer than 65536 bytes"},
		"long key":         {`{"` + strings.Repeat("x", MaxJSONString+1) + `":1}`, "manifest.parameters: a key longer than 65536 bytes"},
	} {
		err := CheckJSONLimits(submit(t, tc.params))
		if tc.want == "" {
			require.NoError(t, err, name)
			continue
		}
		require.Equal(t, codes.InvalidArgument, status.Code(err), name)
		require.Equal(t, tc.want, status.Convert(err).Message(), name)
	}

	// Metadata is open JSON too.
	req := &coordinatorv1.SubmitProposalRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"tenant_id":"t1","metadata":`+nested(40)+`}`), req))
	require.Equal(t, "metadata: nesting depth exceeds 32", status.Convert(CheckJSONLimits(req)).Message())
}

func TestCheckJSONDepth(t *testing.T) {
	t.Parallel()
	require.NoError(t, CheckJSONDepth([]byte(nested(10)), 10))
	require.EqualError(t, CheckJSONDepth([]byte(nested(11)), 10), "JSON nesting depth exceeds 10 at a.a.a.a.…")
	body := `{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":{"d":` + nested(5000) + `}}}`
	require.EqualError(t, CheckJSONDepth([]byte(body), MaxBodyDepth), "JSON nesting depth exceeds 48 at manifest.parameters.d.a.…")
	require.EqualError(t, CheckJSONDepth([]byte(`[[[`), 2), "JSON nesting depth exceeds 2 at [].[]")
	// Brackets inside strings, escaped quotes, and keys after commas.
	require.NoError(t, CheckJSONDepth([]byte(`{"a":"[[[[\"{{{{","b":[1]}`), 2))
	require.EqualError(t, CheckJSONDepth([]byte(`{"a":1,"b\"c":{"x":[]}}`), 2), `JSON nesting depth exceeds 2 at b\"c.x`)
	// Keys are redacted and clipped.
	err := CheckJSONDepth([]byte(`{"alice@example.com":[[1]]}`), 2)
	require.EqualError(t, err, "JSON nesting depth exceeds 2 at <REDACTED:email>.[]")
}

// jsonDepth is the reference: the deepest nesting encoding/json sees.
func jsonDepth(data []byte) (int, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	depth, deepest := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return deepest, nil
		}
		if err != nil {
			return 0, err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// FuzzCheckJSONDepth checks the depth scanner against encoding/json on valid JSON,
// and that it never panics on anything else.
func FuzzCheckJSONDepth(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, nested(5), `{"a":"[[[\"]]]","b":[[1],[2,[3]]]}`, `{"k\\":[{"x":[]}]}`, `"\`, `[[[`, `]]]{{`, `{"a":1,"b":{"c":[{"d":null}]}}`} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		limit = 1 + abs(limit)%40
		err := CheckJSONDepth(data, limit)
		if !json.Valid(data) {
			return
		}
		depth, jerr := jsonDepth(data)
		if jerr != nil {
			return
		}
		if (depth > limit) != (err != nil) {
			t.Fatalf("depth %d, limit %d: CheckJSONDepth = %v", depth, limit, err)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
