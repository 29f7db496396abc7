package canonical

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// fast canonicalises the JSON the fabric produces itself (encoding/json and protojson
// output) in one pass over the input, writing each member's canonical text once and
// reordering an object's members in place. It reports ok=false for anything outside
// that common shape — a lone or paired surrogate escape, a duplicate key, a malformed
// token, very deep nesting — and JSON then hands the input to the reference
// implementation (github.com/gowebpki/jcs), so results and errors are always the
// reference's: a differential fuzz test holds the two to the same bytes. The reference
// builds a tree of strings first; for the fabric's documents that was a fifth of all
// the objects it allocated.
func fast(in []byte) ([]byte, bool) {
	if in == nil {
		return nil, false
	}
	c := canonicalizer{in: in, out: make([]byte, 0, len(in))}
	c.skipSpace()
	if !c.value() {
		return nil, false
	}
	c.skipSpace()
	if c.i != len(c.in) {
		return nil, false
	}
	return c.out, true
}

// maxFastDepth is the nesting the fast path handles; deeper documents go to the
// reference implementation (which allows 10,000 levels).
const maxFastDepth = 256

type canonicalizer struct {
	in    []byte
	i     int
	out   []byte
	depth int
}

func isSpace(b byte) bool { return b == ' ' || b == '\n' || b == '\r' || b == '\t' }

func (c *canonicalizer) skipSpace() {
	for c.i < len(c.in) && isSpace(c.in[c.i]) {
		c.i++
	}
}

func (c *canonicalizer) value() bool {
	if c.i >= len(c.in) {
		return false
	}
	switch c.in[c.i] {
	case '{':
		return c.object()
	case '[':
		return c.array()
	case '"':
		s, ok := c.str()
		if !ok {
			return false
		}
		c.out = AppendString(c.out, s)
		return true
	default:
		return c.scalar()
	}
}

// scalar is a literal or a number, ended like the reference ends it: at , ] } or
// whitespace (or the end).
func (c *canonicalizer) scalar() bool {
	start := c.i
	for c.i < len(c.in) {
		b := c.in[c.i]
		if b == ',' || b == ']' || b == '}' || isSpace(b) {
			break
		}
		if b > 0x7f {
			return false
		}
		c.i++
	}
	tok := c.in[start:c.i]
	switch string(tok) {
	case "true", "false", "null":
		c.out = append(c.out, tok...)
		return true
	}
	if !isNumber(tok) {
		return false
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return false
	}
	s, err := jcs.NumberToJSON(f)
	if err != nil {
		return false
	}
	c.out = append(c.out, s...)
	return true
}

// isNumber matches -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isNumber(t []byte) bool {
	i := 0
	if i < len(t) && t[i] == '-' {
		i++
	}
	switch {
	case i < len(t) && t[i] == '0':
		i++
	case i < len(t) && t[i] >= '1' && t[i] <= '9':
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(t) && t[i] == '.' {
		i++
		d := i
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(t) && (t[i] == 'e' || t[i] == 'E') {
		i++
		if i < len(t) && (t[i] == '+' || t[i] == '-') {
			i++
		}
		d := i
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(t)
}

// str decodes the string at c.i (which is '"'). Escapes other than a non-surrogate
// \uXXXX and the short forms, control bytes and invalid UTF-8 are not handled here.
func (c *canonicalizer) str() (string, bool) {
	c.i++ // opening quote
	start := c.i
	// Fast scan: no escape before the closing quote means the bytes are the string.
	for c.i < len(c.in) {
		b := c.in[c.i]
		switch {
		case b == '"':
			s := string(c.in[start:c.i])
			c.i++
			return s, true
		case b == '\\':
			return c.strEscaped(start)
		case b < 0x20:
			return "", false
		case b < 0x80:
			c.i++
		default:
			r, size := utf8.DecodeRune(c.in[c.i:])
			if r == utf8.RuneError && size <= 1 {
				return "", false
			}
			c.i += size
		}
	}
	return "", false
}

func (c *canonicalizer) strEscaped(start int) (string, bool) {
	var sb strings.Builder
	sb.Grow(c.i - start + 16)
	sb.Write(c.in[start:c.i])
	for c.i < len(c.in) {
		b := c.in[c.i]
		switch {
		case b == '"':
			c.i++
			return sb.String(), true
		case b == '\\':
			if c.i+1 >= len(c.in) {
				return "", false
			}
			e := c.in[c.i+1]
			c.i += 2
			switch e {
			case '"', '\\', '/':
				sb.WriteByte(e)
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				if c.i+4 > len(c.in) {
					return "", false
				}
				v, err := strconv.ParseUint(string(c.in[c.i:c.i+4]), 16, 32)
				if err != nil || utf16.IsSurrogate(rune(v)) {
					return "", false
				}
				sb.WriteRune(rune(v))
				c.i += 4
			default:
				return "", false
			}
		case b < 0x20:
			return "", false
		case b < 0x80:
			sb.WriteByte(b)
			c.i++
		default:
			r, size := utf8.DecodeRune(c.in[c.i:])
			if r == utf8.RuneError && size <= 1 {
				return "", false
			}
			sb.Write(c.in[c.i : c.i+size])
			c.i += size
		}
	}
	return "", false
}

// AppendString appends s as an RFC 8785 string: the short escapes, \u00xx for other
// control characters, everything else as is; an invalid UTF-8 byte becomes U+FFFD.
func AppendString(out []byte, s string) []byte {
	out = append(out, '"')
	last := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				out = append(out, s[last:i]...)
				out = utf8.AppendRune(out, utf8.RuneError)
				last = i + 1
			}
			i += size
			continue
		}
		if b >= 0x20 && b != '"' && b != '\\' {
			i++
			continue
		}
		out = append(out, s[last:i]...)
		switch b {
		case '"', '\\':
			out = append(out, '\\', b)
		case '\b':
			out = append(out, '\\', 'b')
		case '\f':
			out = append(out, '\\', 'f')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			out = append(out, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
		}
		i++
		last = i
	}
	out = append(out, s[last:]...)
	return append(out, '"')
}

func (c *canonicalizer) array() bool {
	if c.depth++; c.depth > maxFastDepth {
		return false
	}
	defer func() { c.depth-- }()
	c.i++ // [
	c.out = append(c.out, '[')
	c.skipSpace()
	if c.i < len(c.in) && c.in[c.i] == ']' {
		c.i++
		c.out = append(c.out, ']')
		return true
	}
	for {
		c.skipSpace()
		if !c.value() {
			return false
		}
		c.skipSpace()
		if c.i >= len(c.in) {
			return false
		}
		switch c.in[c.i] {
		case ',':
			c.i++
			c.out = append(c.out, ',')
		case ']':
			c.i++
			c.out = append(c.out, ']')
			return true
		default:
			return false
		}
	}
}

// member is one member of an object being canonicalised: its decoded name, and where
// its canonical `"name":value` text sits in out.
type member struct {
	name       string
	start, end int
}

func (c *canonicalizer) object() bool {
	if c.depth++; c.depth > maxFastDepth {
		return false
	}
	defer func() { c.depth-- }()
	c.i++ // {
	base := len(c.out)
	var members []member
	c.skipSpace()
	if c.i < len(c.in) && c.in[c.i] == '}' {
		c.i++
		c.out = append(c.out, '{', '}')
		return true
	}
	for {
		c.skipSpace()
		if c.i >= len(c.in) || c.in[c.i] != '"' {
			return false
		}
		name, ok := c.str()
		if !ok {
			return false
		}
		c.skipSpace()
		if c.i >= len(c.in) || c.in[c.i] != ':' {
			return false
		}
		c.i++
		c.skipSpace()
		start := len(c.out)
		c.out = AppendString(c.out, name)
		c.out = append(c.out, ':')
		if !c.value() {
			return false
		}
		members = append(members, member{name: name, start: start, end: len(c.out)})
		c.skipSpace()
		if c.i >= len(c.in) {
			return false
		}
		if c.in[c.i] == ',' {
			c.i++
			continue
		}
		if c.in[c.i] != '}' {
			return false
		}
		c.i++
		break
	}
	slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.name, b.name) })
	for k := 1; k < len(members); k++ {
		if compareUTF16(members[k-1].name, members[k].name) == 0 {
			return false // duplicate: the reference reports it
		}
	}
	// Rewrite the members in sorted order, with braces and commas.
	body := slices.Clone(c.out[base:])
	c.out = append(c.out[:base], '{')
	for k, m := range members {
		if k > 0 {
			c.out = append(c.out, ',')
		}
		c.out = append(c.out, body[m.start-base:m.end-base]...)
	}
	c.out = append(c.out, '}')
	return true
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 sorts keys. For
// strings without supplementary characters that is their UTF-8 byte order.
func compareUTF16(a, b string) int {
	if !HasSupplementary(a) && !HasSupplementary(b) {
		return strings.Compare(a, b)
	}
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

// HasSupplementary reports whether s (UTF-8) holds a character outside the Basic
// Multilingual Plane: only then do RFC 8785's UTF-16 key order and byte order differ.
func HasSupplementary(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0xF0 {
			return true
		}
	}
	return false
}
