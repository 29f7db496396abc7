package precheck

import (
	"net/url"
	"sort"
	"strings"
)

// Redacted is the placeholder that replaces secret material in every string
// the precheck produces.
const Redacted = "<REDACTED>"

// minQuerySecretLen is the shortest query value that the report scrubber
// treats as a secret. Shorter values ("0", "on", "yes") are almost never
// credentials and scrubbing them would mangle unrelated text; RedactURL still
// redacts every query value regardless of length.
const minQuerySecretLen = 4

// RedactURL returns raw with secret material removed so that it can be logged:
//
//   - a userinfo password is replaced by <REDACTED> (the user name is kept);
//   - every query value is replaced by <REDACTED> (the keys are kept);
//   - a fragment is replaced by <REDACTED>.
//
// Strings that do not parse as URLs, that parse as opaque URLs such as
// "user:pass@host:5432", or that have no host but an '@' ("token@host") are
// redacted heuristically: everything before the
// last '@' of the authority and everything after the first '?' or '#' is
// replaced. The result never contains the userinfo password of raw.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if needsLoose(u, err) {
		return redactLoose(raw)
	}

	var b strings.Builder
	if u.Scheme != "" {
		b.WriteString(u.Scheme)
		b.WriteByte(':')
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil {
		b.WriteString("//")
	}
	if u.User != nil {
		b.WriteString(url.User(u.User.Username()).String())
		if _, hasPassword := u.User.Password(); hasPassword {
			b.WriteByte(':')
			b.WriteString(Redacted)
		}
		b.WriteByte('@')
	}
	// Host and path are rebuilt from a copy without userinfo, query or
	// fragment so that the standard library does the escaping.
	rest := url.URL{Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	restStr := rest.String()
	if u.Host != "" || u.Scheme != "" || u.User != nil {
		// rest.String() prefixes "//" when a host is present.
		restStr = strings.TrimPrefix(restStr, "//")
	}
	b.WriteString(restStr)

	if u.RawQuery != "" || u.ForceQuery {
		b.WriteByte('?')
		b.WriteString(redactQuery(u.RawQuery))
	}
	if u.Fragment != "" || u.RawFragment != "" {
		b.WriteByte('#')
		b.WriteString(Redacted)
	}
	return b.String()
}

// redactQuery keeps the keys of a query string and replaces every value.
func redactQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	values, _ := url.ParseQuery(rawQuery) // best effort: malformed pairs are dropped
	if len(values) == 0 {
		return Redacted
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, url.QueryEscape(k)+"="+Redacted)
	}
	return strings.Join(parts, "&")
}

// needsLoose reports whether a parse result cannot be trusted to locate the
// userinfo: the string did not parse, is opaque ("user:pass@host"), is a
// scheme-less "token@host", or has a path that looks like it holds a
// credential ("http://h//user:pass@x": a ':' before the last '@').
func needsLoose(u *url.URL, err error) bool {
	if err != nil || u.Opaque != "" {
		return true
	}
	at := strings.LastIndex(u.Path, "@")
	if at < 0 {
		return false
	}
	if u.Host == "" && u.User == nil {
		return true
	}
	return strings.Contains(u.Path[:at], ":")
}

// looseUserinfo locates, in a string that is not a well-formed URL, the span
// that may hold credentials: from after a leading "scheme://" (or from the
// start) to the last '@' before any '?' or '#'. ok is false without such '@'.
func looseUserinfo(raw string) (start, at int, ok bool) {
	head := raw
	if i := strings.IndexAny(head, "?#"); i >= 0 {
		head = head[:i]
	}
	if i := strings.Index(head, "://"); i > 0 && isScheme(head[:i]) {
		start = i + len("://")
	}
	at = strings.LastIndex(head, "@")
	if at < start {
		return 0, 0, false
	}
	return start, at, true
}

// isScheme reports whether s is a syntactically valid URL scheme.
func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return s != ""
}

// redactLoose is the fallback for strings that are not well-formed URLs. It
// over-redacts rather than risk leaking a credential: the whole userinfo
// span and everything after the first '?' or '#' are replaced.
func redactLoose(raw string) string {
	s := raw
	tail := ""
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
		tail = "?" + Redacted
	}
	if start, at, ok := looseUserinfo(s); ok {
		s = s[:start] + Redacted + s[at:]
	}
	return s + tail
}

// secretSet collects secret values found in the environment so that every
// string of a report can be scrubbed as a last line of defence.
type secretSet struct {
	values map[string]struct{}
}

func newSecretSet() *secretSet {
	return &secretSet{values: make(map[string]struct{})}
}

// add registers a secret value. Empty values are ignored.
func (s *secretSet) add(v string) {
	if v == "" {
		return
	}
	s.values[v] = struct{}{}
	// A secret may appear escaped in URLs or quoted in error messages.
	if esc := url.QueryEscape(v); esc != v {
		s.values[esc] = struct{}{}
	}
	if esc := url.PathEscape(v); esc != v {
		s.values[esc] = struct{}{}
	}
	if esc := strings.TrimPrefix(url.UserPassword("u", v).String(), "u:"); esc != v {
		s.values[esc] = struct{}{}
	}
}

// addURL registers the userinfo password and the query values of raw.
func (s *secretSet) addURL(raw string) {
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	if needsLoose(u, err) {
		// Not a well-formed URL: register whatever sits between the scheme and the
		// last '@' as a secret, it is what redactLoose hides.
		s.addLooseUserinfo(raw)
		return
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			s.add(p)
		}
	}
	values, _ := url.ParseQuery(u.RawQuery)
	for _, vs := range values {
		for _, v := range vs {
			if len(v) >= minQuerySecretLen {
				s.add(v)
			}
		}
	}
}

func (s *secretSet) addLooseUserinfo(raw string) {
	start, at, ok := looseUserinfo(raw)
	if !ok {
		return
	}
	userinfo := raw[start:at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		s.add(userinfo[i+1:])
	} else {
		s.add(userinfo)
	}
}

// scrub replaces every registered secret in str by <REDACTED>. Longer
// secrets are replaced first so that a secret containing another one is
// fully removed.
func (s *secretSet) scrub(str string) string {
	if str == "" || len(s.values) == 0 {
		return str
	}
	secrets := make([]string, 0, len(s.values))
	for v := range s.values {
		secrets = append(secrets, v)
	}
	sort.Slice(secrets, func(i, j int) bool {
		if len(secrets[i]) != len(secrets[j]) {
			return len(secrets[i]) > len(secrets[j])
		}
		return secrets[i] < secrets[j]
	})
	for _, v := range secrets {
		if strings.Contains(Redacted, v) {
			// Replacing e.g. "RED" would loop on our own placeholder;
			// such a secret cannot be told apart from the placeholder.
			str = replaceOutsidePlaceholder(str, v)
			continue
		}
		str = strings.ReplaceAll(str, v, Redacted)
	}
	return str
}

// replaceOutsidePlaceholder replaces v in str except inside existing
// <REDACTED> placeholders.
func replaceOutsidePlaceholder(str, v string) string {
	parts := strings.Split(str, Redacted)
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, v, Redacted)
	}
	return strings.Join(parts, Redacted)
}
