package redact

// This file: IBANs: a known country code, its registered length and the mod-97 check.

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
