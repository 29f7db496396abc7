package redact

import "strings"

// This file: telephone numbers: international ("+"), parenthesised area codes, and
// national formats (NANP, trunk-prefixed).

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
