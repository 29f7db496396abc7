package redact

import "strings"

// This file: secrets in free text: bearer tokens, JWTs, and the password of
// scheme://user:password@host.

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
