package redact

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

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

// scan runs every detector over s and appends raw, possibly overlapping
// candidates to out. It dispatches on the byte that can start or anchor a
// detection so that text without such bytes costs one pass over the string.
func scan(s string, out []Finding) []Finding {
	n := len(s)
	// JWTs may start inside a token (after a prefix glued to it), so they
	// are searched for separately.
	for off := 0; ; {
		k := strings.Index(s[off:], "eyJ")
		if k < 0 {
			break
		}
		var end int
		out, end = scanJWT(s, off+k, out)
		off = end
	}
	v6end := 0
	st := scanState{stopFrom: -1}
	for i := 0; i < n; i++ {
		c := s[i]
		switch byteClass[c] {
		case clsNone:
			continue
		case clsDigit:
			if i > 0 {
				p := s[i-1]
				if (p == '.' || p == '-') && i > 1 && isDigit(s[i-2]) {
					i = alnumEnd(s, i) - 1 // inside a dotted or dashed number
					continue
				}
			}
			// Every numeric detector needs either a standalone run of
			// 13-19 digits (a card) or a separator and another digit
			// after the first run.
			k := digitsEnd(s, i)
			l := k - i
			if sep := byte(0); k+1 < n && isDigit(s[k+1]) {
				sep = s[k]
				if l == 3 && (sep == '-' || sep == ' ' || sep == '.') {
					out = scanSSN(s, i, out)
				}
				if sep == '.' && l <= 3 {
					out = scanIPv4(s, i, out)
				}
				if (sep == ' ' || sep == '-' || sep == '.') && l == 4 {
					out = scanCard(s, i, out)
				}
				if (sep == ' ' || sep == '-' || sep == '.') && (l == 3 || (l == 1 && c == '1') || c == '0') {
					out = scanNationalPhone(s, i, out)
				}
			}
			if l >= 13 && l <= 19 {
				out = scanCard(s, i, out)
			}
			if l == 9 {
				out = scanBareSSN(s, i, out)
			}
			// Skip the rest of the alphanumeric token: nothing starts
			// inside one.
			i = alnumEnd(s, k) - 1
		case clsLetter:
			if c == 'b' || c == 'B' {
				out = scanBearer(s, i, out)
			}
			out = scanIBAN(s, i, out)
			if isUpper(c) {
				out = scanNINO(s, i, out)
			}
			i = alnumEnd(s, i+1) - 1
		case clsLT:
			if e := placeholderEnd(s, i); e > 0 {
				i = e - 1
			}
		case clsAt:
			out = scanEmail(s, i, out)
		case clsColon:
			if strings.HasPrefix(s[i:], "://") {
				out = scanURLCredentials(s, i, out)
				continue
			}
			if i >= v6end {
				var end int
				out, end = scanIPv6(s, i, out)
				if end > v6end {
					v6end = end
				}
			}
			var end int
			if out, end = scanAssignment(s, i, out, &st); end > i {
				i = end - 1
			}
		case clsEq:
			var end int
			if out, end = scanAssignment(s, i, out, &st); end > i {
				// The value is redacted whole or is redacted already:
				// nothing inside it needs scanning, and skipping it keeps
				// the scan linear.
				i = end - 1
			}
		case clsPlus:
			out = scanIntlPhone(s, i, out)
		case clsParen:
			out = scanParenPhone(s, i, out)
		}
	}
	return out
}

// Byte classes dispatched on by scan. The main loop reaches a letter or a
// digit only at the start of an alphanumeric token.
const (
	clsNone = iota
	clsDigit
	clsLetter
	clsLT
	clsAt
	clsColon
	clsEq
	clsPlus
	clsParen
)

var byteClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = clsDigit
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = clsLetter
		t[c-'a'+'A'] = clsLetter
	}
	t['<'] = clsLT
	t['@'] = clsAt
	t[':'] = clsColon
	t['='] = clsEq
	t['+'] = clsPlus
	t['('] = clsParen
	return t
}()

func alnumEnd(s string, i int) int {
	for i < len(s) && isAlnum(s[i]) {
		i++
	}
	return i
}

// ---- byte classes ----

func isDigit(c byte) bool  { return c-'0' < 10 }
func isLower(c byte) bool  { return c-'a' < 26 }
func isUpper(c byte) bool  { return c-'A' < 26 }
func isLetter(c byte) bool { return isLower(c | 0x20) }
func isAlnum(c byte) bool  { return isDigit(c) || isLetter(c) }
func isHex(c byte) bool    { return isDigit(c) || (c|0x20)-'a' < 6 }
func toLower(c byte) byte {
	if isUpper(c) {
		return c | 0x20
	}
	return c
}
func toUpper(c byte) byte {
	if isLower(c) {
		return c &^ 0x20
	}
	return c
}

// isB64URL reports base64url alphabet bytes.
func isB64URL(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

// isB68 reports bytes of an RFC 6750 b64token (without the '=' padding).
func isB68(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// equalFoldASCII compares s and lower-case ASCII t ignoring ASCII case.
func equalFoldASCII(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if toLower(s[i]) != t[i] {
			return false
		}
	}
	return true
}

func add(out []Finding, k Kind, a, b int) []Finding {
	if a >= b {
		return out
	}
	return append(out, Finding{Kind: k, Start: a, End: b})
}

// digitsEnd returns the end of the run of ASCII digits starting at i.
func digitsEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// ---- numbers: SSN, IPv4, card, national phone ----

// scanSSN matches a US SSN of three groups of 3, 2 and 4 digits: separated
// by dashes anywhere ("123-45-6789"), by spaces or dots only after a word
// that names an SSN ("SSN 123 45 6789"), since "123 45 6789" alone is as
// likely a phone or an amount.
func scanSSN(s string, i int, out []Finding) []Finding {
	if len(s)-i < 11 {
		return out
	}
	t := s[i : i+11]
	sep := t[3]
	for k := 0; k < 11; k++ {
		if k == 3 || k == 6 {
			if t[k] != sep {
				return out
			}
		} else if !isDigit(t[k]) {
			return out
		}
	}
	if e := i + 11; e < len(s) {
		if isAlnum(s[e]) || ((s[e] == sep || s[e] == '-' || s[e] == '.') && e+1 < len(s) && isDigit(s[e+1])) {
			return out
		}
	}
	if !ssnValid(t[0:3], t[4:6], t[7:11]) || (sep != '-' && !ssnContext(s, i)) {
		return out
	}
	return add(out, KindNationalID, i, i+11)
}

// scanBareSSN matches nine digits without separators ("123456789") after a
// word that names an SSN ("ssn", "SSN#", "social security number"); a bare
// nine-digit number elsewhere is an order number or an amount far more often
// than an SSN.
func scanBareSSN(s string, i int, out []Finding) []Finding {
	e := i + 9
	if e < len(s) && (isAlnum(s[e]) || ((s[e] == '.' || s[e] == '-' || s[e] == ',') && e+1 < len(s) && isDigit(s[e+1]))) {
		return out
	}
	if !ssnValid(s[i:i+3], s[i+3:i+5], s[i+5:i+9]) || !ssnContext(s, i) {
		return out
	}
	return add(out, KindNationalID, i, e)
}

// ssnValid applies the SSA's rules: area 000, 666 and 900-999, group 00 and
// serial 0000 are never issued.
func ssnValid(area, group, serial string) bool {
	a := int(area[0]-'0')*100 + int(area[1]-'0')*10 + int(area[2]-'0')
	return a != 0 && a != 666 && a < 900 && group != "00" && serial != "0000"
}

// ssnContextBytes is how far before a number ssnContext looks for a word
// naming an SSN.
const ssnContextBytes = 40

// ssnContext reports whether one of the words just before i, on the same
// line, names a US social security number: "ssn", "ssns", "socsec", or
// "social" followed by "security" or "sec".
func ssnContext(s string, i int) bool {
	a := max(0, i-ssnContextBytes)
	w := s[a:i]
	if nl := strings.LastIndexAny(w, "\n\r"); nl >= 0 {
		w = w[nl+1:]
	}
	social := false
	for k := 0; k < len(w); {
		if !isLetter(w[k]) {
			k++
			continue
		}
		e := k
		for e < len(w) && isLetter(w[e]) {
			e++
		}
		word := w[k:e]
		switch {
		case equalFoldASCII(word, "ssn"), equalFoldASCII(word, "ssns"), equalFoldASCII(word, "socsec"):
			return true
		case social && (equalFoldASCII(word, "security") || equalFoldASCII(word, "sec")):
			return true
		}
		social = equalFoldASCII(word, "social")
		k = e
	}
	return false
}

func scanIPv4(s string, i int, out []Finding) []Finding {
	j := i
	for part := 0; part < 4; part++ {
		k := digitsEnd(s, j)
		if k == j || k-j > 3 {
			return out
		}
		j = k
		if part < 3 {
			if j >= len(s) || s[j] != '.' {
				return out
			}
			j++
		}
	}
	if j < len(s) {
		c := s[j]
		if isAlnum(c) || (c == '.' && j+1 < len(s) && isDigit(s[j+1])) {
			return out
		}
	}
	if a, err := netip.ParseAddr(s[i:j]); err != nil || !a.Is4() {
		return out
	}
	return add(out, KindIPv4, i, j)
}

type span struct{ start, end int }

// digitGroups parses up to len(gs) digit groups starting at i, separated by
// exactly one byte from seps; unless mixed, the first separator fixes the
// separator for the rest. It stops once more than maxDigits digits were read.
func digitGroups(s string, i int, seps string, mixed bool, maxDigits int, gs []span) ([]span, byte) {
	var sep byte
	total := 0
	j := i
	for len(gs) < cap(gs) {
		k := digitsEnd(s, j)
		if k == j {
			break
		}
		gs = append(gs, span{j, k})
		total += k - j
		if total > maxDigits || k+1 >= len(s) || !isDigit(s[k+1]) {
			break
		}
		c := s[k]
		if strings.IndexByte(seps, c) < 0 || (!mixed && sep != 0 && c != sep) {
			break
		}
		sep = c
		j = k + 1
	}
	return gs, sep
}

func groupLens(gs []span, lens ...int) bool {
	if len(gs) < len(lens) {
		return false
	}
	for i, l := range lens {
		if gs[i].end-gs[i].start != l {
			return false
		}
	}
	return true
}

func scanCard(s string, i int, out []Finding) []Finding {
	if s[i] < '2' || s[i] > '6' {
		return out
	}
	var arr [6]span
	gs, _ := digitGroups(s, i, " -.", true, 19, arr[:0])
	try := func(end int) bool {
		if end < len(s) && isAlnum(s[end]) {
			return false
		}
		return luhn(s[i:end])
	}
	if l := gs[0].end - gs[0].start; l >= 13 && l <= 19 {
		if try(gs[0].end) {
			return add(out, KindCard, i, gs[0].end)
		}
		return out
	}
	if gs[0].end-gs[0].start != 4 || len(gs) < 3 {
		return out
	}
	// Longest layouts first.
	for k := 3; k >= 1; k-- {
		if groupLens(gs, 4, 4, 4, 4, k) && try(gs[4].end) {
			return add(out, KindCard, i, gs[4].end)
		}
	}
	if groupLens(gs, 4, 6, 5) && try(gs[2].end) {
		return add(out, KindCard, i, gs[2].end)
	}
	for k := 4; k >= 1; k-- {
		if groupLens(gs, 4, 4, 4, k) && try(gs[3].end) {
			return add(out, KindCard, i, gs[3].end)
		}
	}
	if groupLens(gs, 4, 6, 4) && try(gs[2].end) {
		return add(out, KindCard, i, gs[2].end)
	}
	return out
}

// luhn reports whether the digits of s (other bytes are skipped) pass the
// Luhn check.
func luhn(s string) bool {
	sum, double := 0, false
	for k := len(s) - 1; k >= 0; k-- {
		c := s[k]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// phoneEndOK reports whether a phone number may end at e: not followed by an
// alphanumeric byte.
func phoneEndOK(s string, e int) bool {
	return e >= len(s) || !isAlnum(s[e])
}

func scanNationalPhone(s string, i int, out []Finding) []Finding {
	var arr [6]span
	gs, sep := digitGroups(s, i, " -.", false, 15, arr[:0])
	if len(gs) < 2 {
		return out
	}
	// NANP: [1-]NXX-NXX-XXXX with one separator throughout.
	nanp := func(gs []span) bool {
		if !groupLens(gs, 3, 3, 4) || s[gs[0].start] < '2' {
			return false
		}
		e := gs[2].end
		if !phoneEndOK(s, e) {
			return false
		}
		// Reject when the same non-space separator continues the number.
		if sep != ' ' && e+1 < len(s) && s[e] == sep && isDigit(s[e+1]) {
			return false
		}
		return true
	}
	if nanp(gs) {
		return add(out, KindPhone, i, gs[2].end)
	}
	if s[i] == '1' && gs[0].end-gs[0].start == 1 && nanp(gs[1:]) {
		return add(out, KindPhone, i, gs[3].end)
	}
	// Trunk prefix 0: 2-5 groups of 2+ digits separated by spaces or dashes,
	// 9-12 digits in all.
	if s[i] != '0' || sep == '.' {
		return out
	}
	if l := gs[0].end - gs[0].start; l < 2 || l > 5 || strings.Count(s[gs[0].start:gs[0].end], "0") == l {
		return out // the area code is 2-5 digits and not all zeros
	}
	if sep == '-' && groupLens(gs, 3, 2, 4) {
		return out // SSN-shaped (an invalid one: valid SSNs never start with 0)
	}
	total, end := 0, -1
	for k, g := range gs {
		l := g.end - g.start
		if k == 5 || l < 2 || total+l > 12 {
			break
		}
		total += l
		end = g.end
	}
	if total < 9 || end < 0 || !phoneEndOK(s, end) {
		return out
	}
	return add(out, KindPhone, i, end)
}

// scanParenPhone matches "(555) 123-4567", "(020) 7946 0958": an area code
// of 2-5 digits in parentheses and groups of 2+ digits, 9-13 digits in all.
func scanParenPhone(s string, i int, out []Finding) []Finding {
	if i > 0 && isAlnum(s[i-1]) {
		return out
	}
	k := digitsEnd(s, i+1)
	area := k - (i + 1)
	if area < 2 || area > 5 || k >= len(s) || s[k] != ')' {
		return out
	}
	j := k + 1
	if j < len(s) && s[j] == ' ' {
		j++
	}
	if j >= len(s) || !isDigit(s[j]) {
		return out
	}
	var arr [5]span
	gs, _ := digitGroups(s, j, " -.", false, 13, arr[:0])
	total, end := area, -1
	for _, g := range gs {
		l := g.end - g.start
		if l < 2 || total+l > 13 {
			break
		}
		total += l
		end = g.end
	}
	if total < 9 || end < 0 || !phoneEndOK(s, end) {
		return out
	}
	return add(out, KindPhone, i, end)
}

// scanIntlPhone matches "+" and 7-15 digits in groups separated by one
// space, dash or dot, with optional parenthesised groups ("+44 (0)20 …").
// Dots are accepted only with four groups or more, so that signed decimals
// ("+0.00012345") are not phones.
func scanIntlPhone(s string, i int, out []Finding) []Finding {
	if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '+') {
		return out
	}
	n := len(s)
	j := i + 1
	if j >= n || !isDigit(s[j]) {
		return out
	}
	total, end, groups, dots := 0, -1, 0, 0
	for j < n {
		var d, next int
		switch {
		case isDigit(s[j]):
			k := digitsEnd(s, j)
			d, next = k-j, k
		case s[j] == '(':
			k := digitsEnd(s, j+1)
			if k == j+1 || k >= n || s[k] != ')' {
				break
			}
			d, next = k-(j+1), k+1
		}
		if d == 0 {
			break
		}
		if total+d > 15 {
			if total == 0 {
				return out
			}
			break
		}
		total += d
		end = next
		groups++
		j = next
		if j >= n {
			break
		}
		// After a parenthesised group the next group may follow directly.
		if s[j-1] == ')' && (isDigit(s[j]) || s[j] == '(') {
			continue
		}
		if (s[j] == ' ' || s[j] == '-' || s[j] == '.') && j+1 < n && (isDigit(s[j+1]) || s[j+1] == '(') {
			if s[j] == '.' {
				dots++
			}
			j++
			continue
		}
		break
	}
	if total < 7 || end < 0 || (dots > 0 && groups < 4) || !phoneEndOK(s, end) {
		return out
	}
	return add(out, KindPhone, i, end)
}

// ---- letters: IBAN, NINO, bearer, JWT ----

// ibanLengths maps an IBAN country code to its registered length.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16,
	"BG": 22, "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22,
	"CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20,
	"EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22,
	"GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
	"IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30,
	"KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
	"LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
	"MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
	"PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
	"SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
	"SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29,
	"VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

func scanIBAN(s string, i int, out []Finding) []Finding {
	n := len(s)
	if n-i < 15 || !isLetter(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return out
	}
	cc := [2]byte{toUpper(s[i]), toUpper(s[i+1])}
	want := ibanLengths[string(cc[:])]
	if want == 0 {
		return out
	}
	// Electronic format.
	k := i + 4
	for k < n && k-i < want && isAlnum(s[k]) {
		k++
	}
	if k-i == want && (k == n || !isAlnum(s[k])) {
		if ibanValid(s[i:k]) {
			return add(out, KindIBAN, i, k)
		}
		return out
	}
	// Print format: groups of four separated by one space, the last group
	// possibly shorter.
	if k != i+4 {
		return out
	}
	j, got := i+4, 4
	for got < want {
		if j+1 >= n || s[j] != ' ' || !isAlnum(s[j+1]) {
			return out
		}
		g := j + 1
		for g < n && g-(j+1) < 4 && isAlnum(s[g]) {
			g++
		}
		l := g - (j + 1)
		got += l
		j = g
		if l < 4 && got != want {
			return out
		}
	}
	if got != want || (j < n && isAlnum(s[j])) {
		return out
	}
	if ibanValid(s[i:j]) {
		return add(out, KindIBAN, i, j)
	}
	return out
}

// ibanValid checks the ISO 13616 mod-97 checksum of an IBAN; spaces are
// skipped.
func ibanValid(iban string) bool {
	r := 0
	step := func(c byte) {
		switch {
		case isDigit(c):
			r = (r*10 + int(c-'0')) % 97
		case isLetter(c):
			r = (r*100 + int(toUpper(c)-'A') + 10) % 97
		}
	}
	for k := 4; k < len(iban); k++ {
		step(iban[k])
	}
	for k := 0; k < 4; k++ {
		step(iban[k])
	}
	return r == 1
}

// scanNINO matches a UK National Insurance number: a valid two-letter
// prefix, six digits (optionally in pairs separated by spaces) and a suffix
// A-D, upper case.
func scanNINO(s string, i int, out []Finding) []Finding {
	n := len(s)
	if n-i < 9 || !isUpper(s[i+1]) {
		return out
	}
	a, b := s[i], s[i+1]
	if strings.IndexByte("DFIQUV", a) >= 0 || strings.IndexByte("DFIOQUV", b) >= 0 {
		return out
	}
	switch s[i : i+2] {
	case "BG", "GB", "KN", "NK", "NT", "TN", "ZZ":
		return out
	}
	j := i + 2
	spaced := j < n && s[j] == ' '
	if spaced {
		j++
	}
	for pair := 0; pair < 3; pair++ {
		if j+2 > n || !isDigit(s[j]) || !isDigit(s[j+1]) {
			return out
		}
		j += 2
		if spaced && pair < 2 {
			if j >= n || s[j] != ' ' {
				return out
			}
			j++
		}
	}
	if spaced && j < n && s[j] == ' ' {
		j++
	}
	if j >= n || s[j] < 'A' || s[j] > 'D' {
		return out
	}
	j++
	if j < n && isAlnum(s[j]) {
		return out
	}
	return add(out, KindNationalID, i, j)
}

func scanBearer(s string, i int, out []Finding) []Finding {
	n := len(s)
	if n-i < 8 || !equalFoldASCII(s[i:i+6], "bearer") {
		return out
	}
	k := i + 6
	for k < n && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	if k == i+6 {
		return out
	}
	t, word := k, true
	for t < n && isB68(s[t]) {
		word = word && isLetter(s[t])
		t++
	}
	for t < n && s[t] == '=' {
		word = false
		t++
	}
	// A short plain word is prose ("the Bearer scheme"), not a token.
	if t == k || (word && t-k < 16) {
		return out
	}
	return add(out, KindBearer, k, t)
}

// scanJWT reports a JWT starting at i. It returns where the search for the
// next "eyJ" may resume: after the JWT, or after the first segment's run
// (any "eyJ" inside that run fails the same way), so the search is linear.
func scanJWT(s string, i int, out []Finding) ([]Finding, int) {
	n := len(s)
	j := i
	resume := i + 3
	for seg := 0; seg < 3; seg++ {
		k := j
		for k < n && isB64URL(s[k]) {
			k++
		}
		if seg == 0 {
			resume = k
		}
		if (seg == 0 && k-j < 5) || (seg == 1 && k-j < 2) {
			return out, resume
		}
		j = k
		if seg < 2 {
			if j >= n || s[j] != '.' {
				return out, resume
			}
			j++
		}
	}
	return add(out, KindJWT, i, j), j
}

// ---- '@': email; ':': URL credentials, IPv6 ----

func isEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomainChar(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

func scanEmail(s string, at int, out []Finding) []Finding {
	a := at
	for a > 0 && at-a < 64 && isEmailLocal(s[a-1]) {
		a--
	}
	for a < at && s[a] == '.' {
		a++
	}
	if a == at {
		return out
	}
	// "scheme://user:password@host" is the URL detector's business.
	if a > 0 && (s[a-1] == ':' || s[a-1] == '@') && inURLUserinfo(s, a-1) {
		return out
	}
	n := len(s)
	b := at + 1
	for b < n && b-at <= 255 && isDomainChar(s[b]) {
		b++
	}
	for b > at+1 && (s[b-1] == '.' || s[b-1] == '-') {
		b--
	}
	dom := s[at+1 : b]
	lastDot := strings.LastIndexByte(dom, '.')
	if lastDot <= 0 {
		return out
	}
	// The TLD is the alphabetic prefix of the last label.
	tld := dom[lastDot+1:]
	t := 0
	for t < len(tld) && isLetter(tld[t]) {
		t++
	}
	if t < 2 {
		return out
	}
	dom = dom[:lastDot+1+t]
	for rest := dom; rest != ""; {
		label := rest
		if d := strings.IndexByte(rest, '.'); d >= 0 {
			label, rest = rest[:d], rest[d+1:]
		} else {
			rest = ""
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return out
		}
	}
	return add(out, KindEmail, a, at+1+len(dom))
}

// inURLUserinfo reports whether position i lies in the userinfo of a
// "scheme://user:password@" prefix.
func inURLUserinfo(s string, i int) bool {
	k := i
	for k > 0 && i-k < 256 {
		c := s[k-1]
		if c == '/' || c == ' ' || c == '\t' || c == '\n' || c == '"' || c == '\'' {
			break
		}
		k--
	}
	return k >= 3 && s[k-3:k] == "://"
}

func isURLStop(c byte) bool {
	return c <= ' ' || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`'
}

// maxAuthority bounds the bytes after "://" searched for userinfo, which
// keeps the scan linear on input such as "a://a://a://…".
const maxAuthority = 1024

// scanURLCredentials reports the password of scheme://user:password@host.
// Passwords that (illegally) contain '/', '?', '#' or '@' are covered too.
func scanURLCredentials(s string, p int, out []Finding) []Finding {
	if p == 0 || !isLetter(s[p-1]) {
		return out
	}
	st := p + 3
	e := st
	for e < len(s) && e-st < maxAuthority && !isURLStop(s[e]) {
		e++
	}
	seg := s[st:e]
	auth := seg
	if k := strings.IndexAny(seg, "/?#"); k >= 0 {
		auth = seg[:k]
	}
	var ui string
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		ui = auth[:at]
	} else {
		c := strings.IndexByte(auth, ':')
		if c < 0 {
			return out
		}
		at := strings.IndexByte(seg[c:], '@')
		if at < 0 {
			return out
		}
		ui = seg[:c+at]
	}
	c := strings.IndexByte(ui, ':')
	if c < 0 {
		return out
	}
	return add(out, KindURLCredentials, st+c+1, st+len(ui))
}

func isV6Char(c byte) bool { return isHex(c) || c == ':' || c == '.' }

// scanIPv6 examines the run of hex digits, colons and dots around the colon
// at p. It returns the end of that run so that the caller skips its other
// colons.
func scanIPv6(s string, p int, out []Finding) ([]Finding, int) {
	n := len(s)
	a := p
	for a > 0 && isV6Char(s[a-1]) {
		a--
	}
	b := p + 1
	for b < n && isV6Char(s[b]) {
		b++
	}
	runEnd := b
	if (a > 0 && (isAlnum(s[a-1]) || s[a-1] == '_')) || (b < n && (isAlnum(s[b]) || s[b] == '_')) {
		return out, runEnd
	}
	for a < b && s[a] == '.' {
		a++
	}
	for b > a && s[b-1] == '.' {
		b--
	}
	if b-a >= 2 && s[a] == ':' && s[a+1] != ':' {
		a++
	}
	if b-a >= 2 && s[b-1] == ':' && s[b-2] != ':' {
		b--
	}
	cand := s[a:b]
	// Two colons and a decimal digit: "a::b" and "dead::beef" read as
	// words, not addresses.
	if strings.Count(cand, ":") < 2 || strings.IndexAny(cand, "0123456789") < 0 {
		return out, runEnd
	}
	addr, err := netip.ParseAddr(cand)
	if err != nil || !addr.Is6() {
		return out, runEnd
	}
	return add(out, KindIPv6, a, b), runEnd
}

// ---- '=' and ':': key/value assignments ----

func isKeyChar(c byte) bool { return isAlnum(c) || c == '_' || c == '-' || c == '.' }

// maxKeyLen bounds the key looked back at before '=' or ':'.
const maxKeyLen = 64

// scanState carries memos that keep scan linear.
type scanState struct {
	// The first value-stop byte at or after stopFrom is at stopAt.
	stopFrom, stopAt int
}

// nextStop returns the first value-stop byte at or after v (or len(s)).
func (st *scanState) nextStop(s string, v int) int {
	if st.stopFrom >= 0 && v >= st.stopFrom && v <= st.stopAt {
		return st.stopAt
	}
	e := v
	for e < len(s) && !isValueStop(s[e]) {
		e++
	}
	st.stopFrom, st.stopAt = v, e
	return e
}

// scanAssignment reports the value of key=value, key: value, "key": "value"
// when key is a sensitive name. When the value is delimited (quoted,
// bracketed, or running to the end of the line) it returns the value's end,
// past which scan may skip: any detection inside is covered by the value.
// Otherwise it returns 0.
func scanAssignment(s string, p int, out []Finding, st *scanState) ([]Finding, int) {
	n := len(s)
	sep := s[p]
	if p+1 < n {
		nx := s[p+1]
		if nx == '=' || (sep == ':' && (nx == ':' || nx == '/')) {
			return out, 0 // "==", ":=" (handled at '='), "::", "://"
		}
	}
	if p > 0 && s[p-1] == ':' && sep == ':' {
		return out, 0 // second colon of "::"
	}
	j := p
	if sep == '=' && j > 0 && (s[j-1] == ':' || s[j-1] == '!' || s[j-1] == '<' || s[j-1] == '>' || s[j-1] == '=') {
		if s[j-1] != ':' {
			return out, 0 // comparison operators
		}
		j-- // ":="
	}
	for k := 0; k < 2 && j > 0 && (s[j-1] == ' ' || s[j-1] == '\t'); k++ {
		j--
	}
	if j > 0 && (s[j-1] == '"' || s[j-1] == '\'') {
		j--
		if j > 0 && s[j-1] == '\\' {
			j--
		}
	}
	k := j
	for k > 0 && j-k < maxKeyLen && isKeyChar(s[k-1]) {
		k--
	}
	if k == j {
		return out, 0
	}
	kind, ok := classifyKey(s[k:j])
	if !ok {
		return out, 0
	}
	v := p + 1
	for v < n && (s[v] == ' ' || s[v] == '\t') {
		v++
	}
	if v >= n {
		return out, 0
	}
	a, b, delimited := valueSpan(s, v, kind == KindSecret && isCookieKey(s[k:j]), st)
	skip := 0
	if delimited {
		skip = b
	}
	if a >= b || redactedAlready(s[a:b]) {
		return out, skip
	}
	if kind == KindSecret {
		kind = KindSecretAssignment
	}
	return add(out, kind, a, b), skip
}

// isCookieKey reports keys whose bare value runs to the end of the line.
func isCookieKey(key string) bool {
	k := strings.ToLower(key) // keys are short; only reached for secret keys
	return strings.Contains(k, "cookie")
}

func isValueStop(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ';', '&', '"', '\'':
		return true
	}
	return false
}

func lineEnd(s string, i int) int {
	for i < len(s) && s[i] != '\n' && s[i] != '\r' {
		i++
	}
	return i
}

// authSchemes are authorization schemes whose credentials follow after a
// space and are redacted with them.
var authSchemes = [...]string{"bearer", "basic", "digest", "token", "bot", "negotiate", "ntlm", "apikey", "hmac"}

// valueSpan returns the value that starts at v, and whether it is
// delimited: quoted, bracketed or running to the end of the line. Quoted and
// bracketed values end at the end of the line when they are not closed on
// it.
func valueSpan(s string, v int, toEOL bool, st *scanState) (int, int, bool) {
	n := len(s)
	switch c := s[v]; {
	case c == '"' || c == '\'':
		e := v + 1
		for e < n && s[e] != c && s[e] != '\n' && s[e] != '\r' {
			if s[e] == '\\' && c == '"' && e+1 < n && s[e+1] != '\n' && s[e+1] != '\r' {
				e++
			}
			e++
		}
		return v + 1, e, true
	case c == '\\' && v+1 < n && s[v+1] == '"':
		eol := lineEnd(s, v+2)
		if e := strings.Index(s[v+2:eol], `\"`); e >= 0 {
			return v + 2, v + 2 + e, true
		}
		return v + 2, eol, true
	case c == '{' || c == '[':
		return v, matchBracket(s, v), true
	}
	if toEOL {
		e := v
		for e < n && s[e] != '\n' && s[e] != '\r' && s[e] != '"' {
			e++
		}
		return v, e, true
	}
	e := trimClosers(s, v, st.nextStop(s, v))
	// "Bearer x", "Basic x": the credentials follow the scheme.
	if e < n && s[e] == ' ' {
		for _, sch := range authSchemes {
			if equalFoldASCII(s[v:e], sch) {
				t := e
				for t < n && s[t] == ' ' {
					t++
				}
				if u := st.nextStop(s, t); u > t {
					e = trimClosers(s, t, u)
				}
				break
			}
		}
	}
	return v, e, false
}

// trimClosers drops trailing ')', ']' and '}' that have no opener in s[a:e],
// so that "map[password:x]" keeps its bracket. Values longer than
// maxTrimLen keep their closers (over-redaction; keeps the scan linear).
func trimClosers(s string, a, e int) int {
	const maxTrimLen = 256
	if e-a > maxTrimLen {
		return e
	}
	for e > a {
		var open byte
		switch s[e-1] {
		case ')':
			open = '('
		case ']':
			open = '['
		case '}':
			open = '{'
		default:
			return e
		}
		if countByte(s[a:e], open) >= countByte(s[a:e], s[e-1]) {
			return e
		}
		e--
	}
	return e
}

func countByte(s string, c byte) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
		}
	}
	return n
}

// matchBracket returns the end of the bracketed value starting at v, or the
// end of the line when it is not closed there.
func matchBracket(s string, v int) int {
	depth := 0
	var quote byte
	for e := v; e < len(s); e++ {
		c := s[e]
		if quote != 0 {
			switch c {
			case '\\':
				e++
			case quote:
				quote = 0
			}
			continue
		}
		switch c {
		case '"', '\'':
			quote = c
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return e + 1
			}
		case '\n', '\r':
			return e
		}
	}
	return len(s)
}
