package auditlog

import (
	"encoding/json"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/gowebpki/jcs"

	"github.com/decision-fabric/fabric/internal/canonical"
)

// The payloads the fabric appends are small JSON-like maps (structpb.Struct.AsMap,
// decoded JSON). The general path of digest encodes one with encoding/json,
// canonicalises the text, and decodes it again for redaction; for these values the
// functions below build the same decoded tree and write the same canonical bytes in
// one walk each. Anything else makes them report ok=false and digest takes the
// general path, so the bytes hashed and stored never depend on which path ran
// (TestDigestFastPathMatchesGeneral and FuzzDigest hold the two to the same result).

// maxTreeDepth is the nesting the fast path handles; deeper payloads take the
// general path.
const maxTreeDepth = 64

// jsonTree returns v as encoding/json decodes (with UseNumber) its canonical
// JSON: the same maps, slices, strings and booleans, and each number as a
// json.Number holding its RFC 8785 text. It handles map[string]any, []any,
// string, float64, int, int64, bool and nil, with valid UTF-8 strings and
// plainKey keys; for anything else (including a nil map or slice, NaN, a
// json.Number) ok is false.
func jsonTree(v any, depth int) (out any, ok bool) {
	if depth > maxTreeDepth {
		return nil, false
	}
	switch t := v.(type) {
	case nil:
		return nil, true
	case bool:
		return t, true
	case string:
		return t, utf8.ValidString(t)
	case float64:
		return number(t)
	case int:
		return number(float64(t)) // rounds as parsing its decimal text does
	case int64:
		return number(float64(t))
	case map[string]any:
		if t == nil {
			return nil, false
		}
		m := make(map[string]any, len(t))
		for k, e := range t {
			if !plainKey(k) {
				return nil, false
			}
			if m[k], ok = jsonTree(e, depth+1); !ok {
				return nil, false
			}
		}
		return m, true
	case []any:
		if t == nil {
			return nil, false
		}
		s := make([]any, len(t))
		for i, e := range t {
			if s[i], ok = jsonTree(e, depth+1); !ok {
				return nil, false
			}
		}
		return s, true
	}
	return nil, false
}

// number is f's RFC 8785 text as a json.Number; NaN and infinities are not JSON.
func number(f float64) (any, bool) {
	s, err := jcs.NumberToJSON(f)
	if err != nil {
		return nil, false
	}
	return json.Number(s), true
}

// plainKey reports whether k is valid UTF-8 without supplementary characters,
// so that RFC 8785's order of keys (by UTF-16 code units) is their byte order.
func plainKey(k string) bool {
	return !canonical.HasSupplementary(k) && utf8.ValidString(k)
}

// appendCanonical appends the RFC 8785 form of a tree jsonTree made, or of
// what redact.Value made of one: maps with plainKey keys, slices, strings,
// booleans, nil, and json.Numbers, which are written as they are (jsonTree
// wrote them canonical; redaction keeps a number or replaces it by a string).
// For anything else ok is false.
func appendCanonical(b []byte, v any) (out []byte, ok bool) {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		if t {
			return append(b, "true"...), true
		}
		return append(b, "false"...), true
	case string:
		return canonical.AppendString(b, t), true
	case json.Number:
		return append(b, t...), true
	case map[string]any:
		if t == nil {
			return nil, false // encoding/json writes null
		}
		keys := slices.AppendSeq(make([]string, 0, len(t)), maps.Keys(t))
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if !plainKey(k) {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = canonical.AppendString(b, k)
			b = append(b, ':')
			if b, ok = appendCanonical(b, t[k]); !ok {
				return nil, false
			}
		}
		return append(b, '}'), true
	case []any:
		if t == nil {
			return nil, false
		}
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendCanonical(b, e); !ok {
				return nil, false
			}
		}
		return append(b, ']'), true
	}
	return nil, false
}
