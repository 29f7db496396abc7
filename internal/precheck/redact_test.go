package precheck

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"http://vault:8200", "http://vault:8200"},
		{"postgres://user:pw@db:5432/x", "postgres://user:<REDACTED>@db:5432/x"},
		{"postgres://user@db:5432/x", "postgres://user@db:5432/x"},
		{"postgres://user:@db/x", "postgres://user:<REDACTED>@db/x"},
		{"https://reg.example/v2/?token=abc&b=2", "https://reg.example/v2/?b=<REDACTED>&token=<REDACTED>"},
		{"https://reg.example/?", "https://reg.example/?"},
		{"https://u:p@h/p#frag", "https://u:<REDACTED>@h/p#<REDACTED>"},
		{"redis://:s3cr3t@127.0.0.1:6379/0", "redis://:<REDACTED>@127.0.0.1:6379/0"},
		{"https://h/?;;;", "https://h/?<REDACTED>"},
		// Opaque and unparseable inputs fall back to the loose redaction.
		{"user:pass@host:5432", "<REDACTED>@host:5432"},
		{"kafka:9092", "kafka:9092"},
		{"token@host", "<REDACTED>@host"},
		{"https://registry.example/@scope/pkg", "https://registry.example/@scope/pkg"},
		{"http://u:p w@h:bad/x?q=1", "http://<REDACTED>@h:bad/x?<REDACTED>"},
		{"%zz://a:b@c", "<REDACTED>@c"},
		{"http://h/path/@scope/pkg", "http://h/path/@scope/pkg"},
		{"http://h/p/u:secret@x", "http://<REDACTED>@x"},
		{"u:secret@h/x://y", "<REDACTED>@h/x://y"},
		{"//://user:secret@", "<REDACTED>@"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, RedactURL(tc.in))
		})
	}
}

func TestSecretSetScrub(t *testing.T) {
	t.Parallel()
	s := newSecretSet()
	s.add("s3cr3t")
	s.add("p@ss word")
	s.add("RED") // a secret inside our own placeholder
	s.addURL("https://h/?token=tok-abc&db=0")
	s.addURL("user:loosepw@host")

	out := s.scrub("dsn s3cr3t, escaped p%40ss+word and p%40ss%20word, tok-abc, RED alert, db=0, loosepw")
	require.NotContains(t, out, "s3cr3t")
	require.NotContains(t, out, "p%40ss")
	require.NotContains(t, out, "tok-abc")
	require.NotContains(t, out, "loosepw")
	require.NotContains(t, out, "RED alert")
	require.Contains(t, out, "db=0", "short query values are not scrubbed")
}

// fuzzMarker is injected as a password by FuzzRedactURL.
const fuzzMarker = "SeCrEtMaRkEr42"

// FuzzRedactURL checks that the userinfo password of a URL never survives
// RedactURL, whatever the rest of the string looks like:
//
//   - a marker password injected into the fuzzed string's userinfo position
//     never appears in the output;
//   - for a string that parses with a password, the output does not depend
//     on that password at all.
func FuzzRedactURL(f *testing.F) {
	seeds := []string{
		"postgres://user:s3cr3t@db:5432/x?sslmode=disable",
		"https://u:p@h",
		"redis://:pw@127.0.0.1:6379/0",
		"http://a:b@c:d@e/f",
		"user:pass@host:5432",
		"token@host",
		"http://u:p%40ss@h/",
		"http://u:p w@h:bad/x",
		"%zz://a:b@c",
		"//u:secret@h/p",
		"http://[::1]:80/?q=1#f",
		"mailto:user:secret@example.com",
		"http://u:secret@/path",
		"//::@",
		"//://user:SeCrEt@",
		"u:secret@h/x://y",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := RedactURL(raw)

		// 1. Marker injection: "user:<marker>@" inserted anywhere before
		// the query or fragment always ends up redacted.
		if !strings.Contains(raw, fuzzMarker) {
			q := len(raw)
			if i := strings.IndexAny(raw, "?#"); i >= 0 {
				q = i
			}
			step := 1
			if q > 64 {
				step = q / 64
			}
			for i := 0; i <= q; i += step {
				alt := raw[:i] + "user:" + fuzzMarker + "@" + raw[i:]
				if got := RedactURL(alt); strings.Contains(got, fuzzMarker) {
					t.Fatalf("RedactURL(%q) = %q leaks the injected password", alt, got)
				}
			}
		}

		// 2. The output of a parsed URL does not depend on its password.
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			return
		}
		if _, ok := u.User.Password(); !ok {
			return
		}
		other := *u
		other.User = url.UserPassword(u.User.Username(), fuzzMarker)
		a, b := RedactURL(u.String()), RedactURL(other.String())
		if a != b {
			t.Fatalf("RedactURL output depends on the password: %q vs %q (from %q)", a, b, raw)
		}
		if strings.Contains(b, fuzzMarker) {
			t.Fatalf("RedactURL(%q) = %q leaks the password", other.String(), b)
		}
		_ = out
	})
}
