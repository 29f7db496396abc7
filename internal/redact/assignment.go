package redact

import "strings"

// This file: key=value, key: value and "key": "value" assignments whose key is a
// secret or PII field name (SensitiveKey): where the value starts and ends (quoted,
// bracketed, bare, to the end of the line).

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
