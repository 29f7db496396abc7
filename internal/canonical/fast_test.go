package canonical

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"
	"github.com/stretchr/testify/require"
)

var differentialSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1e21`, `1E-7`, `123456789012345678901234567890`, `0.1`, `-1.5e+300`,
	`true`, ` false `, "\tnull\n", `{"b":1,"a":2}`, `{"a":{"d":[1,{"z":null,"y":true}],"c":"x"}}`,
	`{"\u00e9":1,"e":2,"\ud83d\ude00":3,"\uffff":4}`, `{"€":1,"😀":2,"":3}`,
	`"esc \" \\ \/ \b \f \n \r \t \u0000 \u001f \u007f \u00e9 \u2028 \u003c"`,
	`"raw é 😀 ✓"`, `{"a":1,"a":2}`, `{"a":1,}`, `[1,]`, `[,1]`, `[1 2]`, `{"a" 1}`, `{a:1}`,
	`01`, `1.`, `.5`, `+1`, `1e`, `--1`, `tru`, `nulll`, `1}`, `[1]x`, `"\ud800"`, `"\udc00\ud800"`,
	`"\ud83d\ude00"`, `"\x"`, "\"\x01\"", "\"\xff\"", "\"\xed\xa0\x80\"", `"\u00g0"`, `[[[[[[1]]]]]]`,
	"{\"a\":\"\xc3\xa9\"}", `{"a":[]   ,  "b" : { } }`, ``, ` `, `1 2`, `"unterminated`,
}

// The fast path gives the reference implementation's bytes, or steps aside: it never
// gives different bytes, and it never accepts what the reference refuses.
func FuzzJSONMatchesReference(f *testing.F) {
	for _, s := range differentialSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want, wantErr := jcs.Transform(in)
		got, ok := fast(in)
		if ok {
			if wantErr != nil {
				t.Fatalf("fast accepted %q, the reference refuses it: %v", in, wantErr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("fast(%q) = %q, reference %q", in, got, want)
			}
		}
		out, err := JSON(in)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(out, want) {
			t.Fatalf("JSON(%q) = %q, %v; reference %q, %v", in, out, err, want, wantErr)
		}
	})
}

// The fast path takes what the fabric itself produces (encoding/json, protojson).
func TestFastPathTakesTheFabricsJSON(t *testing.T) {
	docs := []any{
		map[string]any{"manifest": map[string]any{"action": "scale", "target": "svc<x>&", "parameters": map[string]any{"replicas": 3.0, "ratio": 0.25}},
			"regions": []any{"eu-west", "us-east"}, "note": "line\nbreak \u2028 é 😀", "n": nil, "ok": true},
		[]any{1e21, 1e-7, math.Copysign(0, -1), 123456789.0}, // a negative zero ("-0.0" is +0 in Go)
	}
	for _, d := range docs {
		raw, err := json.Marshal(d)
		require.NoError(t, err)
		got, ok := fast(raw)
		require.True(t, ok, "%s", raw)
		want, err := jcs.Transform(raw)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
}

func BenchmarkJSON(b *testing.B) {
	raw, err := json.Marshal(map[string]any{"manifest": map[string]any{"action": "scale", "target": "svc-1",
		"parameters": map[string]any{"replicas": 3.0}}, "regions": []any{"eu-west", "us-east", "ap-south"},
		"votes": []any{map[string]any{"region": "eu-west", "verdict": "ACCEPT", "signature": "c2lnbmF0dXJl"}}})
	require.NoError(b, err)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := fast(raw); !ok {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("floor-reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jcs.Transform(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// AppendString writes what the reference writes for a valid string, and U+FFFD for an
// invalid UTF-8 byte.
func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s/", "\b\f\n\r\t\x00\x1f\x7f", "é 😀 \u2028"} {
		raw, err := json.Marshal(s)
		require.NoError(t, err)
		want, err := jcs.Transform(raw)
		require.NoError(t, err)
		require.Equal(t, string(want), string(AppendString(nil, s)), "%q", s)
	}
	require.Equal(t, "\"a\uFFFDb\"", string(AppendString(nil, "a\xffb")))
}

func TestIsSHA256Hex(t *testing.T) {
	require.True(t, IsSHA256Hex(SHA256Hex([]byte("x"))))
	for _, bad := range []string{"", "ab", SHA256Hex(nil)[:63], strings.ToUpper(SHA256Hex(nil)), SHA256Hex(nil)[:63] + "g"} {
		require.False(t, IsSHA256Hex(bad), bad)
	}
}
