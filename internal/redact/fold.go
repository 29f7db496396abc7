package redact

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// folded is s as the detectors read it when s is not plain ASCII: every rune
// replaced by its NFKC compatibility form (full-width "＠" and "４" become "@"
// and "4", ligatures and superscripts their letters and digits) and format
// characters (zero-width space and joiners, soft hyphen, bidi controls)
// removed, so that none of them hides an e-mail address, a card number or a
// secret from a detector written for ASCII. start[i] and end[i] are the
// offsets in s of the rune that byte i of text came from; a finding [a, b) in
// text covers [start[a], end[b-1]) in s.
//
// Runes are folded one by one, not with NFKC over the whole string: a
// compatibility form never merges with its neighbours into an ASCII byte, and
// per-rune folding keeps every byte of text attributable to one rune of s.
type folded struct {
	text       string
	start, end []int32
}

// fold returns the folded form of s, and false when folding changes nothing
// (s is ASCII, or all of its runes are their own compatibility form).
func fold(s string) (folded, bool) {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) || !needsFold(s[i:]) {
		return folded{}, false
	}
	buf := make([]byte, 0, len(s))
	start := make([]int32, 0, len(s))
	end := make([]int32, 0, len(s))
	var one [utf8.UTFMax]byte
	for off := 0; off < len(s); {
		r, size := utf8.DecodeRuneInString(s[off:])
		var out []byte
		switch {
		case r < utf8.RuneSelf || (r == utf8.RuneError && size == 1):
			// ASCII and invalid bytes stay as they are.
			out = append(one[:0], s[off:off+size]...)
		case unicode.Is(unicode.Cf, r):
			// Format characters are invisible: drop them.
		default:
			out = norm.NFKC.AppendString(one[:0], s[off:off+size])
		}
		buf = append(buf, out...)
		for range out {
			start = append(start, int32(off))
			end = append(end, int32(off+size))
		}
		off += size
	}
	return folded{text: string(buf), start: start, end: end}, true
}

// needsFold reports whether s is not in NFKC or holds a format character.
func needsFold(s string) bool {
	if !norm.NFKC.IsNormalString(s) {
		return true
	}
	for _, r := range s {
		if r >= utf8.RuneSelf && unicode.Is(unicode.Cf, r) {
			return true
		}
	}
	return false
}

// span maps the finding f of the folded text back to s.
func (f folded) span(x Finding) Finding {
	return Finding{Kind: x.Kind, Start: int(f.start[x.Start]), End: int(f.end[x.End-1])}
}
