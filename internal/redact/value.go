package redact

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Policy says which PII kinds are allowed to stay (the scopes the tenant
// consented to). Secrets are always redacted, whatever Allow says.
//
// Allow[kind] keeps PII of that kind found in text (KindEmail, KindPhone,
// KindCard, KindIBAN, KindNationalID, KindIPv4, KindIPv6) and keeps fields
// named for that kind (an "email" field under Allow[KindEmail]).
// Allow[KindPIIField] keeps every named PII field; the text inside a kept
// field is still scanned, so it keeps only the PII kinds that are allowed.
// The zero Policy allows nothing.
type Policy struct {
	Allow map[Kind]bool
}

// allowsField reports whether a field named for kind k may keep its value.
func (p Policy) allowsField(k Kind) bool {
	return !IsSecretKind(k) && (p.Allow[k] || p.Allow[KindPIIField])
}

// maxDepth bounds the nesting Value walks; deeper values are replaced by
// Placeholder (fail closed, and no stack exhaustion on cyclic maps).
const maxDepth = 256

// Value walks JSON-like data and returns a redacted deep copy together with
// notes of the form "path: kind" that say what was redacted where; a path is
// "signals.owner", "items[2].email" or `labels["a.b"]` (root: "$"). A path
// never contains ": ", so a note splits at its first ": ". Notes never
// contain a value; map keys in paths are themselves redacted. Notes are
// deduplicated and in a deterministic order (map keys sorted).
//
// The walk handles map[string]any, []any, string, float64, bool, nil and
// json.Number, as produced by encoding/json, and also Go integers and
// []byte (walked as a string). Any other value is converted
// through encoding/json (json.Marshal, then decoding with UseNumber) and
// walked; a value that does not marshal is replaced by Placeholder. An error
// becomes its redacted Error() text.
//
// Rules, for policy p:
//
//   - a value under a key that SensitiveKey reports as KindSecret is
//     replaced by Placeholder whatever its type (maps and slices included);
//   - a value under a named PII key (email, phone, ssn, address, dob, …) is
//     replaced by "<REDACTED:kind>" whatever its type, unless p allows the
//     field (Allow[kind] or Allow[KindPIIField]), in which case it is walked
//     like any other value;
//   - every other string is redacted like String, keeping the PII kinds p
//     allows; secrets in text are always redacted;
//   - numbers whose digits form a payment card number are replaced by
//     "<REDACTED:card>" unless p allows KindCard;
//   - map keys are redacted like strings, and the redacted key is what is
//     classified; keys that collide after redaction get a "#2", "#3", …
//     suffix so no entry is lost.
//
// Guarantees: the result shares no map or slice with v; no string in it
// (key or value) contains a finding of a kind p does not allow; no value
// under a secret key survives; Value(result, p) returns a value equal to
// result. Value never panics on JSON-like input and is safe for concurrent
// use.
func Value(v any, p Policy) (any, []string) {
	w := walker{p: p}
	out := w.walk(v, "", 0)
	return out, w.notes
}

type walker struct {
	p     Policy
	notes []string
	seen  map[string]bool
}

func (w *walker) note(path string, k Kind) {
	if path == "" {
		path = "$"
	}
	n := path + ": " + string(k)
	if w.seen == nil {
		w.seen = make(map[string]bool)
	}
	if w.seen[n] {
		return
	}
	w.seen[n] = true
	w.notes = append(w.notes, n)
}

func (w *walker) noteKinds(path string, ks kindSet) {
	for i, k := range allKinds {
		if ks&(1<<i) != 0 {
			w.note(path, k)
		}
	}
}

func (w *walker) str(s, path string) string {
	r, ks := redactString(s, w.p.Allow)
	if ks != 0 {
		w.noteKinds(path, ks)
	}
	return r
}

// number redacts the decimal text of a number; it returns the text and
// whether anything was redacted.
func (w *walker) number(text, path string) (string, bool) {
	r, ks := redactString(text, w.p.Allow)
	if ks == 0 {
		return text, false
	}
	w.noteKinds(path, ks)
	return r, true
}

// float redacts an integral float64 whose digits could be a card number
// (float64 holds integers exactly up to 2^53, i.e. 15-16 digits).
func (w *walker) float(f float64, path string) any {
	if f != math.Trunc(f) || math.Abs(f) < 1e12 || math.Abs(f) >= 1e20 {
		return f
	}
	if r, ok := w.number(strconv.FormatFloat(f, 'f', -1, 64), path); ok {
		return r
	}
	return f
}

func (w *walker) walk(v any, path string, depth int) any {
	if depth > maxDepth {
		w.note(path, KindSecret)
		return Placeholder
	}
	switch t := v.(type) {
	case nil:
		return nil
	case string:
		return w.str(t, path)
	case bool:
		return t
	case float64:
		return w.float(t, path)
	case float32:
		if r, ok := w.float(float64(t), path).(string); ok {
			return r
		}
		return t
	case []byte:
		return w.str(string(t), path)
	case json.Number:
		if r, ok := w.number(string(t), path); ok {
			return r
		}
		return t
	case int:
		return w.integer(t, strconv.FormatInt(int64(t), 10), path)
	case int64:
		return w.integer(t, strconv.FormatInt(t, 10), path)
	case int32:
		return w.integer(t, strconv.FormatInt(int64(t), 10), path)
	case uint:
		return w.integer(t, strconv.FormatUint(uint64(t), 10), path)
	case uint64:
		return w.integer(t, strconv.FormatUint(t, 10), path)
	case uint32:
		return w.integer(t, strconv.FormatUint(uint64(t), 10), path)
	case int8, int16, uint8, uint16:
		return t // too small to hold a card number
	case map[string]any:
		return w.object(t, path, depth)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = w.walk(e, path+"["+strconv.Itoa(i)+"]", depth+1)
		}
		return out
	case error:
		return w.str(t.Error(), path)
	}
	return w.viaJSON(v, path, depth)
}

func (w *walker) integer(v any, text, path string) any {
	if len(text) < 13 {
		return v
	}
	if r, ok := w.number(text, path); ok {
		return r
	}
	return v
}

// viaJSON converts an arbitrary Go value to its JSON-like form and walks it.
func (w *walker) viaJSON(v any, path string, depth int) (out any) {
	defer func() {
		if recover() != nil { // a panicking MarshalJSON
			w.note(path, KindSecret)
			out = Placeholder
		}
	}()
	b, err := json.Marshal(v)
	if err != nil {
		w.note(path, KindSecret)
		return Placeholder
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		w.note(path, KindSecret)
		return Placeholder
	}
	return w.walk(x, path, depth+1)
}

func (w *walker) object(m map[string]any, path string, depth int) map[string]any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]any, len(m))
	for _, k := range keys {
		rk, ks := redactString(k, w.p.Allow)
		if _, dup := out[rk]; dup {
			rk = uniqueKey(out, m, rk)
		}
		cp := childPath(path, rk)
		if ks != 0 {
			w.noteKinds(cp, ks)
		}
		// The redacted key is classified, so that walking the result again
		// gives the same result.
		if kind, ok := classifyKey(rk); ok {
			if kind == KindSecret {
				out[rk] = Placeholder
				w.note(cp, KindSecret)
				continue
			}
			if !w.p.allowsField(kind) {
				out[rk] = placeholderFor(kind)
				w.note(cp, kind)
				continue
			}
		}
		out[rk] = w.walk(m[k], cp, depth+1)
	}
	return out
}

// uniqueKey appends "#2", "#3", … to k until it names neither an entry
// already written nor another key of the input.
func uniqueKey(out, in map[string]any, k string) string {
	for i := 2; ; i++ {
		c := k + "#" + strconv.Itoa(i)
		if _, ok := out[c]; ok {
			continue
		}
		if _, ok := in[c]; ok {
			continue
		}
		return c
	}
}

// childPath appends a map key to a path: ".key" for identifier-like keys,
// `["key"]` otherwise, with colons escaped as \u003a so that a note splits
// unambiguously at its first ": ".
func childPath(path, key string) string {
	simple := key != ""
	for i := 0; i < len(key) && simple; i++ {
		c := key[i]
		simple = isAlnum(c) || c == '_' || c == '-'
	}
	if !simple {
		return path + "[" + strings.ReplaceAll(strconv.Quote(key), ":", `\u003a`) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
