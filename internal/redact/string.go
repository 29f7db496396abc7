package redact

import "strings"

// maxPasses bounds the redaction passes of one string. Each pass removes at
// least one byte that is not part of a placeholder, and real input settles
// after one or two passes; hitting the bound means the input is adversarial
// and the whole string is replaced.
const maxPasses = 16

// String returns s with every finding of [Find] replaced: secrets (jwt,
// bearer, secret_assignment, url_credentials) by [Placeholder] "<REDACTED>",
// PII by "<REDACTED:kind>" such as "<REDACTED:email>". Text around findings
// is kept byte for byte.
//
// Replacing can change what surrounds a neighbouring span (a removed e-mail
// no longer hides the digits next to it), so String repeats until Find
// reports nothing. Guarantees, for every input:
//
//   - Find(String(s)) is empty: no detectable secret or PII remains;
//   - String(String(s)) == String(s);
//   - String(s) == s, with no allocation, when Find(s) is empty;
//   - String never panics; if the input has not settled after 16 passes it
//     is replaced by Placeholder as a whole (fail closed).
//
// String is safe for concurrent use.
func String(s string) string {
	r, _ := redactString(s, nil)
	return r
}

// Error returns err.Error() redacted with [String], or "" for a nil error.
// Use it wherever an error message may reach a log, a trace, a response or
// storage.
func Error(err error) string {
	if err == nil {
		return ""
	}
	return String(err.Error())
}

// redactString redacts s, keeping the PII kinds that allow permits, and
// reports the kinds it replaced.
func redactString(s string, allow map[Kind]bool) (string, kindSet) {
	var buf [16]Finding
	fs := find(s, buf[:0], allow)
	if len(fs) == 0 {
		return s, 0
	}
	var kinds kindSet
	for pass := 0; ; pass++ {
		if pass == maxPasses {
			return Placeholder, kinds | kindBit(KindSecret)
		}
		for _, f := range fs {
			kinds |= kindBit(f.Kind)
		}
		s = replace(s, fs)
		fs = find(s, buf[:0], allow)
		if len(fs) == 0 {
			return s, kinds
		}
	}
}

// replace substitutes the placeholder of each finding; fs is sorted and
// non-overlapping.
func replace(s string, fs []Finding) string {
	var b strings.Builder
	grow := len(s)
	for _, f := range fs {
		grow += len(placeholderFor(f.Kind)) - (f.End - f.Start)
	}
	if grow > 0 {
		b.Grow(grow)
	}
	last := 0
	for _, f := range fs {
		b.WriteString(s[last:f.Start])
		b.WriteString(placeholderFor(f.Kind))
		last = f.End
	}
	b.WriteString(s[last:])
	return b.String()
}
