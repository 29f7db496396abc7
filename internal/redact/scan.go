package redact

import "strings"

// This file: the scan driver: one pass over the string that dispatches on the byte
// class of each anchor byte to the detectors, and the ASCII lexing helpers they share
// (byte classes, digit runs and digit groups).

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
