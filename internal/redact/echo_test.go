package redact

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestEcho(t *testing.T) {
	big := strings.Repeat("A", 900_000)
	got := Echo(big)
	require.Equal(t, strings.Repeat("A", EchoRunes)+"…(900000 bytes)", got)

	require.Equal(t, "short", Echo("short"))
	require.Equal(t, "<REDACTED:email>", Echo("alice@example.com"))

	// PII is redacted before the cut, so no part of it survives.
	got = Echo(strings.Repeat("x", 60) + " alice@example.com " + big)
	require.NotContains(t, got, "alice")
	require.NotContains(t, got, "<REDACTED:em…", "a placeholder is never cut in two")
	require.True(t, strings.HasSuffix(got, "…(900079 bytes)"), got)

	// Runes, not bytes; the result is valid UTF-8.
	got = Echo(strings.Repeat("é", 100))
	require.True(t, utf8.ValidString(got))
	require.Equal(t, strings.Repeat("é", EchoRunes)+"…(200 bytes)", got)
}

func TestTruncate(t *testing.T) {
	require.Equal(t, "abc", Truncate("abc", 3))
	require.Equal(t, "ab…(3 bytes)", Truncate("abc", 2))
	require.Equal(t, "…(3 bytes)", Truncate("abc", 0))
	require.Equal(t, "x…(18 bytes)", Truncate("x<REDACTED:email>y", 5))
}

func FuzzEcho(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, 8)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		n %= 200
		got := Echo(s)
		if len(Find(got)) > 0 {
			t.Fatalf("Echo(%q) = %q keeps a finding", s, got)
		}
		if utf8.RuneCountInString(got) > EchoRunes+len("…(")+20+len(" bytes)") {
			t.Fatalf("Echo(%q) = %q is too long", s, got)
		}
		tr := Truncate(s, n)
		if utf8.ValidString(s) && !utf8.ValidString(tr) {
			t.Fatalf("Truncate(%q, %d) = %q is not valid UTF-8", s, n, tr)
		}
		if !strings.HasPrefix(s, strings.SplitN(tr, "…(", 2)[0]) {
			t.Fatalf("Truncate(%q, %d) = %q is not a prefix", s, n, tr)
		}
	})
}
