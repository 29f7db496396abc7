package redact

import (
	"cmp"
	"slices"
	"strings"
)

// This file: placeholders already in the input ("<REDACTED>", "<REDACTED:kind>"):
// never reported, never cut, never redacted twice.

// placeholders appends the spans of the placeholders of s, in order.
// Placeholders cannot overlap: none contains '<' after its first byte.
func placeholders(s string, out []span) []span {
	for off := 0; ; {
		k := strings.Index(s[off:], "<REDACTED")
		if k < 0 {
			return out
		}
		off += k
		if e := placeholderEnd(s, off); e > 0 {
			out = append(out, span{off, e})
			off = e
		} else {
			off++
		}
	}
}

// widenToPlaceholders extends f so that it does not cut a placeholder of
// ph, and reports false when f lies entirely within placeholders (nothing
// left to redact).
func widenToPlaceholders(f Finding, ph []span) (Finding, bool) {
	// First placeholder that ends after f.Start.
	i, _ := slices.BinarySearchFunc(ph, f.Start, func(p span, pos int) int {
		return cmp.Compare(p.end, pos+1)
	})
	if i < len(ph) && ph[i].start < f.Start {
		f.Start = ph[i].start
	}
	covered := f.Start
	for ; i < len(ph) && ph[i].start < f.End; i++ {
		if ph[i].start > covered {
			covered = -1 // a byte outside placeholders
		} else if covered >= 0 {
			covered = ph[i].end
		}
		if ph[i].end > f.End {
			f.End = ph[i].end
		}
	}
	if covered >= 0 && covered >= f.End {
		return f, false
	}
	return f, true
}

// placeholderEnd returns the end of the placeholder that starts at i, or -1.
// Only Placeholder and "<REDACTED:kind>" for the PII kinds are recognised.
func placeholderEnd(s string, i int) int {
	const p = "<REDACTED"
	if !strings.HasPrefix(s[i:], p) {
		return -1
	}
	j := i + len(p)
	if j >= len(s) {
		return -1
	}
	switch s[j] {
	case '>':
		return j + 1
	case ':':
		rest := s[j+1:]
		for _, k := range piiPlaceholderKinds {
			if len(rest) > len(k) && rest[len(k)] == '>' && rest[:len(k)] == k {
				return j + 1 + len(k) + 1
			}
		}
	}
	return -1
}

// redactedAlready reports whether v consists of placeholders and
// punctuation only (at least one placeholder, no letter or digit outside
// them), as a value is after redaction: "<REDACTED>", "<REDACTED:iban>.".
func redactedAlready(v string) bool {
	seen := false
	for i := 0; i < len(v); i++ {
		if v[i] == '<' {
			if e := placeholderEnd(v, i); e > 0 {
				seen = true
				i = e - 1
				continue
			}
		}
		if isAlnum(v[i]) || v[i] >= 0x80 {
			return false
		}
	}
	return seen
}
