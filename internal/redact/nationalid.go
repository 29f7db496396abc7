package redact

import "strings"

// This file: national identity numbers: the US SSN (dashed, or bare and spaced
// after a word naming an SSN) and the UK National Insurance number (NINO).

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
