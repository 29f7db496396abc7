package redact

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

// TestDetectorsPositive checks that each detector redacts what it should,
// and only that.
func TestDetectorsPositive(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		kind Kind
	}{
		// email
		{"email", "contact alice.smith+tag@example.co.uk now", "contact <REDACTED:email> now", KindEmail},
		{"email mailto", "mailto:bob@example.org", "mailto:<REDACTED:email>", KindEmail},
		{"email sentence end", "write to a.b@c.io.", "write to <REDACTED:email>.", KindEmail},

		// phone
		{"phone intl spaces", "call +44 20 7946 0958 today", "call <REDACTED:phone> today", KindPhone},
		{"phone intl parens", "+1 (555) 123-4567", "<REDACTED:phone>", KindPhone},
		{"phone intl compact", "tel:+14155552671", "tel:<REDACTED:phone>", KindPhone},
		{"phone intl trunk", "+49 (0)30 1234567", "<REDACTED:phone>", KindPhone},
		{"phone intl dots", "+33.1.23.45.67.89", "<REDACTED:phone>", KindPhone},
		{"phone national parens", "(555) 123-4567", "<REDACTED:phone>", KindPhone},
		{"phone NANP dashes", "555-123-4567", "<REDACTED:phone>", KindPhone},
		{"phone NANP dots", "555.123.4567", "<REDACTED:phone>", KindPhone},
		{"phone NANP 1-800", "1-800-555-0199", "<REDACTED:phone>", KindPhone},
		{"phone UK landline", "020 7946 0958", "<REDACTED:phone>", KindPhone},
		{"phone UK mobile", "07700 900123", "<REDACTED:phone>", KindPhone},
		{"phone FR", "01 23 45 67 89", "<REDACTED:phone>", KindPhone},

		// card
		{"card spaced", "card 4111 1111 1111 1111 ok", "card <REDACTED:card> ok", KindCard},
		{"card compact", "4111111111111111", "<REDACTED:card>", KindCard},
		{"card dashes", "5555-5555-5555-4444", "<REDACTED:card>", KindCard},
		{"card amex", "378282246310005", "<REDACTED:card>", KindCard},
		{"card amex grouped", "3782 822463 10005", "<REDACTED:card>", KindCard},
		{"card after number", "qty 12 4111 1111 1111 1111", "qty 12 <REDACTED:card>", KindCard},

		// iban
		{"iban GB", "GB82WEST12345698765432", "<REDACTED:iban>", KindIBAN},
		{"iban print", "iban: GB82 WEST 1234 5698 7654 32.", "iban: <REDACTED:iban>.", KindIBAN},
		{"iban DE", "to DE89370400440532013000 now", "to <REDACTED:iban> now", KindIBAN},
		{"iban lower", "gb82west12345698765432", "<REDACTED:iban>", KindIBAN},

		// national_id
		{"ssn", "ssn 123-45-6789.", "ssn <REDACTED:national_id>.", KindNationalID},
		{"nino", "NI AB123456C", "NI <REDACTED:national_id>", KindNationalID},
		{"nino spaced", "AB 12 34 56 C", "<REDACTED:national_id>", KindNationalID},

		// ip
		{"ipv4", "10.0.0.1", "<REDACTED:ipv4>", KindIPv4},
		{"ipv4 port", "from 192.168.1.20:8080", "from <REDACTED:ipv4>:8080", KindIPv4},
		{"ipv4 cidr", "10.0.0.0/8", "<REDACTED:ipv4>/8", KindIPv4},
		{"ipv6", "peer 2001:db8::1 up", "peer <REDACTED:ipv6> up", KindIPv6},
		{"ipv6 full", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "<REDACTED:ipv6>", KindIPv6},
		{"ipv6 zone", "fe80::1%eth0", "<REDACTED:ipv6>%eth0", KindIPv6},
		{"ipv6 mapped", "::ffff:10.0.0.1", "<REDACTED:ipv6>", KindIPv6},
		{"ipv6 bracket", "[2001:db8::ff00:42:8329]:443", "[<REDACTED:ipv6>]:443", KindIPv6},
		{"ipv6 loopback", "::1", "<REDACTED:ipv6>", KindIPv6},

		// jwt
		{"jwt", "id " + testJWT + " end", "id <REDACTED> end", KindJWT},
		{"jwt unsigned", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "<REDACTED>", KindJWT},

		// bearer
		{"bearer", "curl -H 'Bearer abc123.def~+/=='", "curl -H 'Bearer <REDACTED>'", KindBearer},
		{"bearer lower", "bearer xyz9", "bearer <REDACTED>", KindBearer},
		{"bearer long word", "BEARER abcdefghijklmnopqrst", "BEARER <REDACTED>", KindBearer},

		// secret_assignment
		{"password=", "password=hunter2 user=bob", "password=<REDACTED> user=bob", KindSecretAssignment},
		{"json api_key", `{"api_key": "sk_live_123", "user":"x"}`, `{"api_key": "<REDACTED>", "user":"x"}`, KindSecretAssignment},
		{"token:", "token: abc", "token: <REDACTED>", KindSecretAssignment},
		{"env var", "DB_PASSWORD=x", "DB_PASSWORD=<REDACTED>", KindSecretAssignment},
		{"quoted spaces", `secret="a b c" z`, `secret="<REDACTED>" z`, KindSecretAssignment},
		{"camel single quotes", "clientSecret: 'xyz'", "clientSecret: '<REDACTED>'", KindSecretAssignment},
		{"query", "GET /cb?access_token=abc&state=1", "GET /cb?access_token=<REDACTED>&state=1", KindSecretAssignment},
		{"go map", "map[password:hunter2]", "map[password:<REDACTED>]", KindSecretAssignment},
		{"escaped json", `{\"password\":\"x y\"}`, `{\"password\":\"<REDACTED>\"}`, KindSecretAssignment},
		{"object value", `credentials={"user":"u","pass":"p"} next`, `credentials=<REDACTED> next`, KindSecretAssignment},
		{"authorization header", "Authorization: Bearer abc.def-123", "Authorization: <REDACTED>", KindSecretAssignment},
		{"basic auth header", "authorization=Basic dXNlcjpwYXNz rest", "authorization=<REDACTED> rest", KindSecretAssignment},
		{"cookie header", "Cookie: a=b; c=d\nnext", "Cookie: <REDACTED>\nnext", KindSecretAssignment},
		{"go assign", `apiKey := "k-123"`, `apiKey := "<REDACTED>"`, KindSecretAssignment},
		{"kebab header", "X-Api-Key: abc", "X-Api-Key: <REDACTED>", KindSecretAssignment},

		// url_credentials
		{"postgres dsn", "postgres://u:pw@h/db", "postgres://u:<REDACTED>@h/db", KindURLCredentials},
		{"redis no user", "redis://:s3cret@cache:6379/0", "redis://:<REDACTED>@cache:6379/0", KindURLCredentials},
		{"password with slash", "amqp://u:pa/ss@h:5672", "amqp://u:<REDACTED>@h:5672", KindURLCredentials},
		{"password with at", "postgres://u:p@ss@db.example.com/x", "postgres://u:<REDACTED>@db.example.com/x", KindURLCredentials},

		// named PII field in text
		{"pii assignment", "first_name=Ada dob: 1990-01-01", "first_name=<REDACTED:pii_field> dob: <REDACTED:pii_field>", KindPIIField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, String(tt.in))
			fs := Find(tt.in)
			require.NotEmpty(t, fs)
			kinds := make([]Kind, len(fs))
			for i, f := range fs {
				kinds[i] = f.Kind
			}
			require.Contains(t, kinds, tt.kind)
		})
	}
}

// TestDetectorsNegative lists look-alikes that must pass unchanged.
func TestDetectorsNegative(t *testing.T) {
	tests := []struct{ name, in string }{
		{"luhn-invalid card", "4111 1111 1111 1112"},
		{"luhn-invalid compact", "4111111111111112"},
		{"card industry 1 (timestamp ms)", "ts=1732700000000"},
		{"19-digit id", "id 1234567890123456789"},
		{"iban bad check", "GB82WEST12345698765431"},
		{"iban unknown country", "XX82WEST12345698765432"},
		{"iban wrong length", "GB82WEST1234569876543"},
		{"ssn area 000", "000-12-3456"},
		{"ssn area 666", "666-12-3456"},
		{"ssn area 9xx", "900-12-3456"},
		{"ssn group 00", "123-00-6789"},
		{"nino bad prefix", "GB123456C"},
		{"nino bad suffix", "AB123456E"},
		{"nino lower", "ab123456c"},
		{"iso date", "2026-11-27"},
		{"iso datetime", "at 2026-11-27T10:30:00.123Z done"},
		{"date time", "2026-11-27 10:30:00"},
		{"eu date", "27-11-2026"},
		{"version", "v1.2.3"},
		{"version 4 parts prefixed", "v1.2.3.4"},
		{"semver range", "go1.26.0 and 1.2.3"},
		{"decimal", "pi=3.14159265358979 e=2.718281828459045"},
		{"signed decimal", "delta=+0.00012345"},
		{"plain short number", "took 12345 ms, 1234567 rows"},
		{"unseparated national", "order 5551234567"},
		{"tz offset", "+05:30 and +0530"},
		{"time", "12:30:45"},
		{"ulid", "01JD3Q0Z9M8K7B6V5C4X3W2Y1T"},
		{"sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		{"sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		{"uuid", "123e4567-e89b-12d3-a456-426614174000"},
		{"uuid digits", "12345678-1234-5678-1234-567812345678"},
		{"invalid ipv4", "999.1.1.1"},
		{"ipv4 leading zero", "010.0.0.1"},
		{"dotted 5", "1.2.3.4.5"},
		{"cpp scope", "std::vector and a::b"},
		{"mac", "00:1a:2b:3c:4d:5e"},
		{"double colon", "a :: b"},
		{"no tld", "user@localhost"},
		{"at handle", "ping @alice"},
		{"not jwt", "eyJ.a.b"},
		{"bearer alone", "the Bearer scheme"},
		{"metadata keys", "token_count=5 max_tokens=100 password_policy=strict token_type=Bearer"},
		{"non secret key", "user=bob level=info"},
		{"comparison", "password == other"},
		{"url no password", "https://user@localhost/x"},
		{"url port", "https://example.com:8443/path?q=1"},
		{"placeholders", "password=<REDACTED> email=<REDACTED:email>"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Empty(t, Find(tt.in))
			require.Equal(t, tt.in, String(tt.in))
		})
	}
}

func TestFindOffsets(t *testing.T) {
	in := "u=a@b.io pw=x 10.0.0.1"
	require.Equal(t, []Finding{
		{Kind: KindEmail, Start: 2, End: 8},
		{Kind: KindIPv4, Start: 14, End: 22},
	}, Find(in))

	// Overlapping detections merge, and a secret wins over PII.
	in = "password=alice@example.com"
	require.Equal(t, []Finding{{Kind: KindSecretAssignment, Start: 9, End: 26}}, Find(in))
	require.Equal(t, "password=<REDACTED>", String(in))
}

func TestPlaceholderForgery(t *testing.T) {
	// Only the package's own placeholders are skipped: a forged one with a
	// secret inside is redacted.
	require.Equal(t, "password=<REDACTED>", String("password=<REDACTED:hunter2>"))
	require.Equal(t, "password=<REDACTED>", String("password=<REDACTED>hunter2"))
}

func TestStringContracts(t *testing.T) {
	inputs := []string{
		"a@b.co4111111111111111",
		"password=hunter2 a@b.com 10.0.0.1 +44 20 7946 0958 " + testJWT,
		"postgres://u:pw@h.example.com/db?sslmode=disable",
		strings.Repeat("x=1 ", 100) + "token=abc",
	}
	for _, in := range inputs {
		out := String(in)
		require.Empty(t, Find(out), "in=%q out=%q", in, out)
		require.Equal(t, out, String(out))
	}
}

func TestStringNoAllocWhenClean(t *testing.T) {
	in := strings.Repeat("level=info msg=\"request done\" status=200 dur=12ms ", 20)
	allocs := testing.AllocsPerRun(100, func() { _ = String(in) })
	require.Zero(t, allocs)
}

func TestIsSecretKind(t *testing.T) {
	for _, k := range []Kind{KindJWT, KindBearer, KindSecretAssignment, KindURLCredentials, KindSecret} {
		require.True(t, IsSecretKind(k), k)
	}
	for _, k := range []Kind{KindEmail, KindPhone, KindCard, KindIBAN, KindNationalID, KindIPv4, KindIPv6, KindPIIField} {
		require.False(t, IsSecretKind(k), k)
	}
}

func TestError(t *testing.T) {
	require.Equal(t, "", Error(nil))
	require.Equal(t, "dial postgres://app:<REDACTED>@db/x: refused",
		Error(errString("dial postgres://app:s3cr3t@db/x: refused")))
}

type errString string

func (e errString) Error() string { return string(e) }

// TestLinearTime feeds adversarial repetitions that would make a naive
// scanner quadratic; each must finish quickly on 256 KiB.
func TestLinearTime(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const size = 256 << 10
	units := []string{
		"password=", `password="`, "password={", "a://", "eyJ", "eyJa", "@", "a@", ":",
		"1:", "Cookie: ", "password=)", "bearer ", "(1", "+1 ", "4111 ", "GB82 ", "<REDACTED",
		"<REDACTED>", "x=<REDACTED:email> ", "a@b.io ", "10.0.0.1 ", "password=a@b.io\n",
	}
	for _, u := range units {
		s := strings.Repeat(u, size/len(u))
		start := time.Now()
		out := String(s)
		require.Empty(t, Find(out))
		require.Less(t, time.Since(start), 5*time.Second, "unit %q", u)
	}
}

// TestFailClosed: input that keeps exposing new findings after each pass is
// replaced as a whole once the pass bound is reached.
func TestFailClosed(t *testing.T) {
	require.Equal(t, "<REDACTED:phone><REDACTED:phone><REDACTED:phone>", String("+0000000+0000000+0000000"))
	require.Equal(t, Placeholder, String(strings.Repeat("+0000000", 40)))
}
