// Package kafkaurl reads KAFKA_URL: the Kafka brokers the fabric publishes lifecycle
// events to (internal/events) and the precheck probes.
//
// The form is a comma-separated list of brokers, each `host:port`, optionally prefixed
// with `kafka://` (plaintext) or `kafka+tls://` (TLS), optionally with `user:password@`
// before the host (SASL/PLAIN; the first broker's credentials are used). Example:
//
//	kafka+tls://fabric:s3cr3t@broker-1:9093,broker-2:9093
//
// The credentials are secrets: Target's String never shows them.
package kafkaurl

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// MaxLen bounds KAFKA_URL, in bytes; MaxBrokers the brokers it lists.
const (
	MaxLen     = 4096
	MaxBrokers = 64
)

// Target is a parsed KAFKA_URL.
type Target struct {
	Brokers  []string // host:port, in the order given
	TLS      bool     // kafka+tls:// on any broker
	User     string   // SASL/PLAIN user; "" for none
	Password string   // SASL/PLAIN password: a secret
}

// String lists the brokers, never the credentials.
func (t Target) String() string { return strings.Join(t.Brokers, ",") }

// Parse reads raw; invalid counts the entries it skipped (not host:port, an unknown
// scheme, beyond MaxBrokers, or all of raw when it is longer than MaxLen).
func Parse(raw string) (t Target, invalid int) {
	if len(raw) > MaxLen {
		return Target{}, 1
	}
	for _, b := range strings.Split(raw, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if len(t.Brokers) == MaxBrokers {
			invalid++
			continue
		}
		tls := false
		if i := strings.Index(b, "://"); i >= 0 {
			switch strings.ToLower(b[:i]) {
			case "kafka":
			case "kafka+tls", "kafka+ssl":
				tls = true
			default:
				invalid++
				continue
			}
			b = b[i+3:]
		}
		b = strings.TrimRight(b, "/")
		var user, pass string
		if at := strings.LastIndex(b, "@"); at >= 0 {
			user, pass = splitUserinfo(b[:at])
			b = b[at+1:]
		}
		host, port, err := net.SplitHostPort(b)
		if err != nil || !validHost(host) {
			invalid++
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			invalid++
			continue
		}
		t.Brokers = append(t.Brokers, net.JoinHostPort(host, port))
		t.TLS = t.TLS || tls
		if t.User == "" && user != "" {
			t.User, t.Password = user, pass
		}
	}
	return t, invalid
}

// splitUserinfo reads "user:password" (either part percent-encoded).
func splitUserinfo(s string) (user, pass string) {
	user, pass, _ = strings.Cut(s, ":")
	if u, err := url.PathUnescape(user); err == nil {
		user = u
	}
	if p, err := url.PathUnescape(pass); err == nil {
		pass = p
	}
	return user, pass
}

// validHost: a DNS name or an IP address (IPv6 possibly with a zone), nothing else.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_', c == ':', c == '%':
		default:
			return false
		}
	}
	return true
}
