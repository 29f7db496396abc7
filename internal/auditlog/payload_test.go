package auditlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/redact"
)

// referenceDigest is digest as defined, through encoding/json and the general
// canonicaliser only: the payload's canonical JSON is hashed, and the summary
// is that JSON decoded (UseNumber), redacted and canonicalised.
func referenceDigest(payload any) (string, []byte, error) {
	raw, err := canonical.Marshal(payload)
	if err != nil {
		return "", nil, invalid("payload is not JSON: %v", err)
	}
	if err := checkPayload(raw); err != nil {
		return "", nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", nil, err
	}
	red, _ := redact.Value(v, redact.Policy{})
	summary, err := canonical.Marshal(red)
	if err != nil {
		return "", nil, err
	}
	if len(summary) > MaxSummaryBytes {
		summary = []byte(fmt.Sprintf(`{"omitted":"the redacted summary was %d bytes; the limit is %d"}`, len(summary), MaxSummaryBytes))
	}
	return canonical.SHA256Hex(raw), summary, nil
}

// requireSameDigest checks that digest agrees with referenceDigest on payload.
func requireSameDigest(t *testing.T, payload map[string]any) {
	t.Helper()
	wantSum, wantSummary, wantErr := referenceDigest(payload)
	sum, summary, err := digest(payload)
	if wantErr != nil {
		require.ErrorIs(t, err, ErrInvalid, "reference: %v", wantErr)
		return
	}
	require.NoError(t, err)
	require.Equal(t, wantSum, sum)
	require.Equal(t, string(wantSummary), string(summary))
}

func TestDigestFastPathMatchesGeneral(t *testing.T) {
	t.Parallel()
	_, ok := jsonTree(benchEvent().Payload, 0)
	require.True(t, ok, "the payloads the fabric appends take the fast path")
	big := strings.Repeat("x", MaxSummaryBytes)
	for name, payload := range map[string]map[string]any{
		"bench":   benchEvent().Payload.(map[string]any),
		"empty":   {},
		"numbers": {"a": 0.1, "b": math.Copysign(0, -1), "c": 1e21, "d": 1e-7, "e": 123456789012345680000.0, "f": float64(1<<53 + 1), "g": int64(1<<53 + 1), "h": -5, "i": 5e-324, "j": math.MaxFloat64},
		"card":    {"n": 4111111111111111.0, "s": "4111 1111 1111 1111", "phone": 5551234567.0, "k": 5551234567},
		"strings": {"html": "<a href='x'>&</a>", "ctl": "\x00\x1f\u007f\u2028\u2029", "esc": "\"\\/\b\f\n\r\t", "uni": "é中𝄞"},
		"pii":     {"email": "alice@example.com", "note": "call +1 415 555 0100 or mail bob@example.org", "password": "hunter2", "token": map[string]any{"a": 1}},
		"nested":  {"a": []any{1.0, "x", nil, true, false, map[string]any{"z": []any{}, "y": map[string]any{}}}, "b": map[string]any{"c": map[string]any{"d": []any{[]any{2.5}}}}},
		"keys":    {"b": 1, "a": 2, "A": 3, "é": 4, "e\u0301": 5, "": 6, "a b": 7, "a:b": 8},
		"astral":  {"𝄞": 1, "\uffff": 2}, // supplementary key: the general path
		"invalid": {"s": "a\xffb"},       // invalid UTF-8: the general path
		"nan":     {"x": math.NaN()},     // not JSON
		"nilmap":  {"m": map[string]any(nil), "s": []any(nil)},
		"other":   {"n": json.Number("1.50"), "u": uint8(3), "f32": float32(0.1)},
		"omitted": {"big": big},
		"toobig":  {"big": strings.Repeat("y", MaxPayloadBytes)},
	} {
		t.Run(name, func(t *testing.T) { requireSameDigest(t, payload) })
	}
	deep := map[string]any{}
	for range maxTreeDepth + 5 {
		deep = map[string]any{"d": deep}
	}
	requireSameDigest(t, deep)
}

func FuzzDigest(f *testing.F) {
	f.Add(`{"a":1,"b":[true,null,"x",{"c":-0.5e3}],"email":"a@b.co"}`)
	f.Add(`{"\u00e9":"\ud834\udd1e","n":4111111111111111,"k":"<&>"}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var m map[string]any
		if json.Unmarshal([]byte(doc), &m) != nil || m == nil {
			return
		}
		requireSameDigest(t, m)
	})
}
