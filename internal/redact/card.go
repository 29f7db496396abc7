package redact

// This file: payment card numbers: 13-19 digits, grouped or not, Luhn-valid.

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
