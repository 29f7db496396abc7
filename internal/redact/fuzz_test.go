package redact

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"",
	"password=hunter2 user=bob",
	"contact alice@example.com or +44 20 7946 0958",
	"card 4111 1111 1111 1111 iban GB82 WEST 1234 5698 7654 32",
	"ssn 123-45-6789 nino AB 12 34 56 C",
	"from 10.0.0.1 and [2001:db8::1]:443",
	"Authorization: Bearer " + testJWT,
	"postgres://u:p@ss@db.example.com/x?password=y",
	`{"api_key": "sk_live_123", "nested": {"token": "abc"}}`,
	"map[password:<REDACTED>] <REDACTED:email> <REDACTED:hunter2>",
	"a@b.co4111111111111111",
	"2026-11-27T10:30:00Z v1.2.3 01JD3Q0Z9M8K7B6V5C4X3W2Y1T",
	"\xff\xfe password=\x00\x80",
	"+0000000+0000000+0000000", // each redaction exposes the next phone
	"a@a@a@a@a.io u:p@ss@h.io",
	"password='x\npassword=\"y\ncookie: a=b; c",
	// Evasions (issue #9): dotted cards, full-width and invisible characters,
	// SSNs without dashes.
	"4111.1111.1111.1111 4111-1111 1111.1111",
	"user＠example.com ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｃｏｍ us\u00ader@exa\u200bmple.com",
	"ssn 123456789 SSN#123 45 6789 social security ４１１１１１１１１",
	"ﬁ＠ﬀ.ｃｏ \u202e\ufeff ＜REDACTED:email＞ ㍱ ⑴⒈",
}

// FuzzString checks String's contracts on arbitrary input: no panic, no
// finding (secret or otherwise) left in the output, idempotence, the
// identity on input without findings; and that the key gate is conservative.
func FuzzString(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs := Find(s)
		for i, x := range fs {
			if x.Start < 0 || x.End > len(s) || x.Start >= x.End || (i > 0 && x.Start < fs[i-1].End) {
				t.Fatalf("bad findings %v for %q", fs, s)
			}
		}
		out := String(s)
		if left := Find(out); len(left) > 0 {
			for _, x := range left {
				if IsSecretKind(x.Kind) {
					t.Fatalf("secret %v %q left in String(%q) = %q", x.Kind, out[x.Start:x.End], s, out)
				}
			}
			t.Fatalf("findings %v left in String(%q) = %q", left, s, out)
		}
		if again := String(out); again != out {
			t.Fatalf("not idempotent:\n in:  %q\n out: %q\n out2: %q", s, out, again)
		}
		if len(fs) == 0 && out != s {
			t.Fatalf("changed input without findings: %q -> %q", s, out)
		}
		if _, ok := classifyWords(s); ok && !maybeSensitiveKey(s) {
			t.Fatalf("key gate rejects sensitive name %q", s)
		}
	})
}

// FuzzValue checks Value on arbitrary JSON: no panic, no finding left in any
// string of the result (keys included), no value left under a sensitive
// key, idempotence, and well-formed "path: kind" notes.
func FuzzValue(f *testing.F) {
	f.Add(`{"signals":{"owner":"alice@example.com"},"items":[{"email":"a@b.io"},{"n":4111111111111111}]}`)
	f.Add(`{"password":"x","config":{"apiKey":{"k":"v"}},"log":"token=abc from 10.0.0.1"}`)
	f.Add(`["+44 20 7946 0958", "GB82WEST12345698765432", null, true, 1.5]`)
	f.Add(`{"a@b.io":1,"c@d.io":2,"<REDACTED:email>#2":3}`)
	f.Add(`"plain"`)
	f.Fuzz(func(t *testing.T, doc string) {
		var v any
		if json.Unmarshal([]byte(doc), &v) != nil {
			t.Skip()
		}
		for _, p := range []Policy{{}, {Allow: map[Kind]bool{KindEmail: true, KindPIIField: true}}} {
			out, notes := Value(v, p)
			checkRedacted(t, out, p, "")
			if again, _ := Value(out, p); !reflect.DeepEqual(again, out) {
				t.Fatalf("not idempotent: %#v -> %#v", out, again)
			}
			// A note is "path: kind", its path built from redacted keys.
			for _, n := range notes {
				i := strings.LastIndex(n, ": ")
				if i < 0 || kindBit(Kind(n[i+2:])) == 0 {
					t.Fatalf("bad note %q", n)
				}
			}
		}
	})
}

func checkRedacted(t *testing.T, v any, p Policy, path string) {
	t.Helper()
	check := func(s string) {
		r, ks := redactString(s, p.Allow)
		if ks != 0 || r != s {
			t.Fatalf("at %s: %q still has findings (%q)", path, s, r)
		}
	}
	switch x := v.(type) {
	case string:
		check(x)
	case map[string]any:
		for k, e := range x {
			check(k)
			if kind, ok := classifyKey(k); ok {
				if kind == KindSecret && e != Placeholder {
					t.Fatalf("at %s.%s: secret key keeps %#v", path, k, e)
				}
				if kind != KindSecret && !p.allowsField(kind) && e != placeholderFor(kind) {
					t.Fatalf("at %s.%s: PII key keeps %#v", path, k, e)
				}
			}
			checkRedacted(t, e, p, path+"."+k)
		}
	case []any:
		for _, e := range x {
			checkRedacted(t, e, p, path+"[]")
		}
	}
}

// FuzzFold checks the folded form the detectors read: every byte maps to a
// rune of the input, in order, and every finding maps to a span of the input.
func FuzzFold(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fd, ok := fold(s)
		if !ok {
			return
		}
		if len(fd.start) != len(fd.text) || len(fd.end) != len(fd.text) {
			t.Fatalf("fold(%q): %d bytes, %d/%d offsets", s, len(fd.text), len(fd.start), len(fd.end))
		}
		for i := range fd.text {
			if fd.start[i] < 0 || fd.start[i] >= fd.end[i] || int(fd.end[i]) > len(s) || (i > 0 && fd.start[i] < fd.start[i-1]) {
				t.Fatalf("fold(%q): bad offsets at %d: %d-%d", s, i, fd.start[i], fd.end[i])
			}
		}
		for _, x := range scan(fd.text, nil) {
			m := fd.span(x)
			if m.Start < 0 || m.End > len(s) || m.Start >= m.End {
				t.Fatalf("finding %v of %q maps to %v", x, fd.text, m)
			}
		}
	})
}
