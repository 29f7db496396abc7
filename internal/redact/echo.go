package redact

import (
	"strconv"
	"unicode/utf8"
)

// EchoRunes bounds how much of a value from a request an error message or a
// log line quotes back.
const EchoRunes = 64

// Echo returns s fit to be quoted back in an error message, a response or a
// log line: redacted like [String], then cut after [EchoRunes] runes and
// marked with the size of the original, "…(900000 bytes)". Whatever s is, the
// result holds at most EchoRunes runes of it plus a short suffix, and no
// finding of [Find].
func Echo(s string) string {
	// Redacted again after the cut: the cut can end a token where the suffix
	// completes it ("eyJa.b" + "…" folds to a JWT's three segments).
	return String(clip(String(s), EchoRunes, len(s)))
}

// Truncate returns s cut after maxRunes runes and marked "…(N bytes)", N being
// len(s); s itself when it has at most maxRunes runes. It never cuts a placeholder
// in two (a placeholder that straddles the cut is dropped whole) and always
// returns valid UTF-8 up to the cut when s is valid UTF-8. Truncate does not
// redact: use [Echo] for values that may hold secrets or PII.
func Truncate(s string, maxRunes int) string { return clip(s, maxRunes, len(s)) }

// clip cuts s after maxRunes runes, naming size as the original's size.
func clip(s string, maxRunes, size int) string {
	maxRunes = max(maxRunes, 0)
	if len(s) <= maxRunes { // fewer bytes than maxRunes: fewer runes too
		return s
	}
	cut, n := 0, 0
	for cut < len(s) && n < maxRunes {
		_, w := utf8.DecodeRuneInString(s[cut:])
		cut += w
		n++
	}
	if cut == len(s) {
		return s
	}
	// Do not leave half a placeholder: "<REDACTED:em…" would read as a
	// forgery. Back up to the start of the one the cut falls in.
	for i := cut - 1; i >= 0 && cut-i < 32; i-- {
		if s[i] == '<' {
			if e := placeholderEnd(s, i); e > cut {
				cut = i
			}
			break
		}
	}
	return s[:cut] + "…(" + strconv.Itoa(size) + " bytes)"
}
