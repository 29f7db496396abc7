package redact

import (
	"cmp"
	"slices"
	"strings"
)

// This file: the entry point: Find and the merge of what the detectors report (most
// severe kind wins, placeholders widened, allowed PII kinds dropped).

// Finding is one sensitive span of a string.
type Finding struct {
	Kind       Kind
	Start, End int // byte offsets in the input, Start < End
}

// Find reports the sensitive spans of s, sorted by Start and
// non-overlapping. Overlapping or nested detections are merged into one
// finding that covers all of them; it takes the most severe kind (any secret
// kind wins over PII). Existing placeholders ("<REDACTED>",
// "<REDACTED:email>", …) are never reported, and a detection that touches a
// placeholder is widened to cover it whole.
//
// The detectors read ASCII. A string with other characters is scanned twice:
// as it is, and folded (each rune replaced by its NFKC compatibility form, so
// full-width "＠" and "４" read as "@" and "4", and invisible format
// characters such as U+200B dropped); a finding in the folded form covers the
// runes it came from.
//
// Detectors, by kind:
//
//   - email: local@domain.tld with an alphabetic TLD of two letters or more.
//   - phone: "+" and 7-15 digits in groups ("+44 20 7946 0958",
//     "+1 (555) 123-4567", "+14155552671"); national "(555) 123-4567",
//     NANP 555-123-4567 / 555.123.4567 / 555 123 4567 / 1-800-555-0199, and
//     trunk-prefixed "020 7946 0958" / "07700 900123" (9-12 digits).
//     Unseparated digit runs without "+", dates, versions and times are not
//     phones.
//   - card: 13-19 digits unseparated or grouped 4-4-4-4(-3), 4-4-4-1..4,
//     4-6-5 or 4-6-4, each group after the first preceded by a space, a dash
//     or a dot (mixed too), starting with 2-6 (the payment-card industries)
//     and Luhn-valid.
//   - iban: a known country code, its registered length, and a valid mod-97
//     check, in electronic ("GB82WEST12345698765432") or print format
//     ("GB82 WEST 1234 5698 7654 32"); letters in any case.
//   - national_id: US SSN "123-45-6789" (area 000, 666 and 900-999, group 00
//     and serial 0000 excluded); also "123456789", "123 45 6789" and
//     "123.45.6789" when a word naming an SSN ("ssn", "SSN#", "social
//     security") comes shortly before on the same line; and UK NINO
//     "AB123456C" / "AB 12 34 56 C" (upper case, valid prefix and suffix A-D).
//   - ipv4 / ipv6: every address net/netip accepts (no leading zeros),
//     including loopback and private ranges; not part of a longer dotted or
//     alphanumeric token; an IPv6 candidate needs two colons and a decimal
//     digit ("a::b", "dead::beef" are not addresses).
//   - jwt: three base64url segments separated by dots, starting "eyJ".
//   - bearer: the token after "Bearer " (any case); the scheme word stays. A
//     token must contain a non-letter or be 16 bytes or longer, so that prose
//     ("the Bearer scheme") is left alone.
//   - secret_assignment: the value after key=, key: or "key": when the key is
//     a secret name per SensitiveKey (password, api_key, token, …). Values
//     may be quoted ('…', "…", \"…\"), bracketed ({…}, […]) or bare (up to
//     whitespace or one of , ; & " '); an authorization value keeps its
//     scheme inside the redaction ("Authorization: Bearer x" → the whole
//     "Bearer x"); a cookie value runs to the end of the line. The key stays.
//   - url_credentials: the password of scheme://user:password@host; the user
//     name and host stay.
//   - a value assigned to a named PII field in the same shapes
//     ("first_name=Ada", "email: x", "dob: 1990-01-01") is reported with the
//     field's kind (KindPIIField, KindEmail, …).
//
// Find is safe for concurrent use.
func Find(s string) []Finding {
	var buf [16]Finding
	fs := find(s, buf[:0], nil)
	if len(fs) == 0 {
		return nil
	}
	return append([]Finding(nil), fs...)
}

// find appends the merged findings of s whose kind is not allowed to out.
// A PII kind is allowed when allow[kind] is true; secrets never are.
func find(s string, out []Finding, allow map[Kind]bool) []Finding {
	base := len(out)
	out = scan(s, out)
	if f, ok := fold(s); ok {
		// The detectors read ASCII: run them again over the folded form and
		// map what they find back to s. Both scans count, so folding can only
		// add findings.
		k := len(out)
		out = scan(f.text, out)
		for i := k; i < len(out); i++ {
			out[i] = f.span(out[i])
		}
	}
	fs := out[base:]
	if len(fs) == 0 {
		return out
	}
	if len(allow) > 0 {
		n := 0
		for _, f := range fs {
			if !IsSecretKind(f.Kind) && allow[f.Kind] {
				continue
			}
			fs[n] = f
			n++
		}
		fs = fs[:n]
	}
	if strings.Contains(s, "<REDACTED") {
		var arr [32]span
		ph := placeholders(s, arr[:0])
		n := 0
		for _, f := range fs {
			f, ok := widenToPlaceholders(f, ph)
			if !ok {
				continue
			}
			fs[n] = f
			n++
		}
		fs = fs[:n]
	}
	slices.SortFunc(fs, func(a, b Finding) int {
		if a.Start != b.Start {
			return cmp.Compare(a.Start, b.Start)
		}
		return cmp.Compare(b.End, a.End)
	})
	n := 0
	for _, f := range fs {
		if n > 0 && f.Start < fs[n-1].End {
			m := &fs[n-1]
			if f.End > m.End {
				m.End = f.End
			}
			if rank(f.Kind) < rank(m.Kind) {
				m.Kind = f.Kind
			}
			continue
		}
		fs[n] = f
		n++
	}
	return out[:base+n]
}
