package web

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// visible escapes s for HTML and shows every character that would change how text
// around it renders, or not render at all, as its escape in a <span class="ctl">:
// control characters (Unicode Cc) except newline and tab, format characters (Cf:
// the bidirectional overrides and isolates U+202A–U+202E and U+2066–U+2069, the
// zero-width characters U+200B–U+200F, U+FEFF...), the line and paragraph
// separators U+2028 and U+2029, and bytes that are not UTF-8 (\xNN). A proposer
// cannot make "db‮lave" look like "dbeval" to the approver.
func visible(s string) template.HTML {
	var b strings.Builder
	b.Grow(len(s))
	start := 0 // start of the run of plain text not yet written
	flush := func(end int) {
		if start < end {
			b.WriteString(html.EscapeString(s[start:end]))
		}
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == utf8.RuneError && size == 1:
			esc = fmt.Sprintf(`\x%02X`, s[i])
		case hidden(r):
			esc = fmt.Sprintf(`\u%04X`, r)
		}
		if esc != "" {
			flush(i)
			b.WriteString(`<span class="ctl">`)
			b.WriteString(esc)
			b.WriteString(`</span>`)
			start = i + size
		}
		i += size
	}
	flush(len(s))
	return template.HTML(b.String()) //nolint:gosec // built from html.EscapeString and fixed markup
}

// hidden reports whether r is shown as an escape rather than rendered.
func hidden(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// humanDuration is d as "2h5m", "45m" or "less than a minute".
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return "less than a minute"
	}
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int((d%time.Hour)/time.Minute)
	switch {
	case h >= 48:
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		return fmt.Sprintf("%dm", m)
	}
}

// plain is s with the characters visible would escape replaced by their escape
// text, for places that take text only (the <title>).
func plain(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02X`, s[i])
		case hidden(r) || r == '\n' || r == '\t':
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}
