package kafkaurl

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		want    Target
		invalid int
	}{
		{"k:9092", Target{Brokers: []string{"k:9092"}}, 0},
		{" kafka://a:1/ , b:2,,", Target{Brokers: []string{"a:1", "b:2"}}, 0},
		{"KAFKA+TLS://u%40x:p%3Aw@[::1]:9093,c:3", Target{Brokers: []string{"[::1]:9093", "c:3"}, TLS: true, User: "u@x", Password: "p:w"}, 0},
		{"http://a:1,a,a:0,a:70000,:1,kafka://b:2", Target{Brokers: []string{"b:2"}}, 5},
		{"", Target{}, 0},
		{strings.Repeat("a", MaxLen+1), Target{}, 1},
	} {
		got, invalid := Parse(tc.raw)
		require.Equal(t, tc.want, got, tc.raw)
		require.Equal(t, tc.invalid, invalid, tc.raw)
	}
	tgt, _ := Parse("kafka://fabric:s3cr3t@b:1")
	require.NotContains(t, tgt.String(), "s3cr3t")
	many, invalid := Parse(strings.Repeat("b:1,", MaxBrokers+3))
	require.Len(t, many.Brokers, MaxBrokers)
	require.Equal(t, 3, invalid)
}

// FuzzParse: any KAFKA_URL parses without panic into bounded, well-formed brokers, and
// a password never shows in String.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"k:9092", "kafka+tls://u:p@a:1,b:2", "kafka://[::1]:1/", "x://a:1", "@:1", "%zz:%zz@a:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, invalid := Parse(raw)
		if invalid < 0 || len(got.Brokers) > MaxBrokers {
			t.Fatalf("brokers %d invalid %d", len(got.Brokers), invalid)
		}
		for _, b := range got.Brokers {
			if _, _, err := splitHostPort(b); err != nil {
				t.Fatalf("broker %q: %v", b, err)
			}
		}
		if got.Password != "" && len(got.Password) >= 4 && strings.Contains(got.String(), got.Password) && !strings.Contains(strings.Join(got.Brokers, ""), got.Password) {
			t.Fatalf("password in String")
		}
	})
}

func splitHostPort(b string) (string, string, error) {
	t, invalid := Parse(b)
	if invalid != 0 || len(t.Brokers) != 1 || t.Brokers[0] != b {
		return "", "", errNotCanonical
	}
	return t.Brokers[0], "", nil
}

var errNotCanonical = errorString("broker does not parse back to itself")

type errorString string

func (e errorString) Error() string { return string(e) }
