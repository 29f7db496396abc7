package redact

import (
	"net/netip"
	"strings"
)

// This file: IP addresses: IPv4 dotted quads and IPv6, as net/netip parses them.

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
	if strings.Count(cand, ":") < 2 || !strings.ContainsAny(cand, "0123456789") {
		return out, runEnd
	}
	addr, err := netip.ParseAddr(cand)
	if err != nil || !addr.Is6() {
		return out, runEnd
	}
	return add(out, KindIPv6, a, b), runEnd
}
