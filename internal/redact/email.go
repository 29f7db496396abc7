package redact

import "strings"

// This file: e-mail addresses, anchored on '@' (not inside a URL's userinfo).

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
