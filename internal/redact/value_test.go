package redact

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(s), &v))
	return v
}

func TestValueNested(t *testing.T) {
	in := decodeJSON(t, `{
		"signals": {"owner": "alice@example.com", "score": 0.7, "ok": true, "none": null},
		"items": [
			{"id": 1, "email": "bob@example.com"},
			{"id": 2, "note": "call +44 20 7946 0958"},
			{"id": 3, "contact": {"email": "carol@example.com", "phone": "+1 (555) 123-4567"}}
		],
		"config": {"password": "hunter2", "apiKey": {"nested": "k"}, "dsn": "postgres://u:pw@h/db"},
		"log": "login ok password=swordfish from 10.0.0.1",
		"card": 4111111111111111,
		"alice@example.com": "key is PII"
	}`)
	orig, err := json.Marshal(in)
	require.NoError(t, err)

	out, notes := Value(in, Policy{})

	want := decodeJSON(t, `{
		"signals": {"owner": "<REDACTED:email>", "score": 0.7, "ok": true, "none": null},
		"items": [
			{"id": 1, "email": "<REDACTED:email>"},
			{"id": 2, "note": "call <REDACTED:phone>"},
			{"id": 3, "contact": {"email": "<REDACTED:email>", "phone": "<REDACTED:phone>"}}
		],
		"config": {"password": "<REDACTED>", "apiKey": "<REDACTED>", "dsn": "<REDACTED>"},
		"log": "login ok password=<REDACTED> from <REDACTED:ipv4>",
		"card": "<REDACTED:card>",
		"<REDACTED:email>": "key is PII"
	}`)
	require.Equal(t, want, out)
	require.ElementsMatch(t, []string{
		`["<REDACTED\u003aemail>"]: email`,
		"card: card",
		"config.apiKey: secret",
		"config.dsn: secret",
		"config.password: secret",
		"items[0].email: email",
		"items[1].note: phone",
		"items[2].contact.email: email",
		"items[2].contact.phone: phone",
		"log: secret_assignment",
		"log: ipv4",
		"signals.owner: email",
	}, notes)

	// The input is untouched, and no note carries a value.
	again, err := json.Marshal(in)
	require.NoError(t, err)
	require.Equal(t, string(orig), string(again))
	for _, n := range notes {
		for _, secret := range []string{"alice", "bob", "carol", "hunter2", "swordfish", "7946", "4111", "10.0.0.1"} {
			require.NotContains(t, n, secret)
		}
	}

	// Idempotent.
	out2, _ := Value(out, Policy{})
	require.Equal(t, out, out2)
}

func TestValueConsent(t *testing.T) {
	in := decodeJSON(t, `{
		"email": "alice@example.com",
		"owner": {"contact": "bob@example.com", "phone": "+44 20 7946 0958", "ip": "10.0.0.1"},
		"token": "abc",
		"note": "mail carol@example.com, token=xyz, call +44 20 7946 0958",
		"first_name": "Ada"
	}`)
	out, notes := Value(in, Policy{Allow: map[Kind]bool{KindEmail: true}})
	require.Equal(t, decodeJSON(t, `{
		"email": "alice@example.com",
		"owner": {"contact": "bob@example.com", "phone": "<REDACTED:phone>", "ip": "<REDACTED:pii_field>"},
		"token": "<REDACTED>",
		"note": "mail carol@example.com, token=<REDACTED>, call <REDACTED:phone>",
		"first_name": "<REDACTED:pii_field>"
	}`), out)
	require.ElementsMatch(t, []string{
		"owner.phone: phone",
		"owner.ip: pii_field",
		"token: secret",
		"note: phone",
		"note: secret_assignment",
		"first_name: pii_field",
	}, notes)

	// Allowing secrets has no effect; pii_field keeps named fields, but the
	// text inside them is still scanned for kinds that are not allowed.
	out, _ = Value(in, Policy{Allow: map[Kind]bool{
		KindPIIField: true, KindSecret: true, KindSecretAssignment: true, KindJWT: true,
	}})
	m := out.(map[string]any)
	require.Equal(t, "<REDACTED>", m["token"])
	require.Equal(t, "Ada", m["first_name"])
	require.Equal(t, "<REDACTED:email>", m["email"])
	require.Equal(t, "<REDACTED:ipv4>", m["owner"].(map[string]any)["ip"])
	require.Equal(t, "mail <REDACTED:email>, token=<REDACTED>, call <REDACTED:phone>", m["note"])
}

type account struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Email    string
}

func TestValueOtherTypes(t *testing.T) {
	out, notes := Value(map[string]any{
		"acct":    account{User: "u", Password: "p", Email: "a@b.io"},
		"err":     errors.New("auth failed for a@b.io"),
		"ids":     []string{"x", "10.0.0.1"},
		"n":       json.Number("4111111111111111"),
		"i":       int64(4111111111111111),
		"small":   42,
		"raw":     json.RawMessage(`{"secret":"s"}`),
		"bad":     make(chan int),
		"numbers": []any{1.5, float64(4111111111111111)},
	}, Policy{})
	require.Equal(t, map[string]any{
		"acct":    map[string]any{"user": "u", "password": "<REDACTED>", "Email": "<REDACTED:email>"},
		"err":     "auth failed for <REDACTED:email>",
		"ids":     []any{"x", "<REDACTED:ipv4>"},
		"n":       "<REDACTED:card>",
		"i":       "<REDACTED:card>",
		"small":   42,
		"raw":     map[string]any{"secret": "<REDACTED>"},
		"bad":     "<REDACTED>",
		"numbers": []any{1.5, "<REDACTED:card>"},
	}, out)
	require.Contains(t, notes, "bad: secret")
	require.Contains(t, notes, "acct.password: secret")

	// Scalars at the root use the path "$".
	s, notes := Value("write to a@b.io", Policy{})
	require.Equal(t, "write to <REDACTED:email>", s)
	require.Equal(t, []string{"$: email"}, notes)
}

func TestValueKeyCollisions(t *testing.T) {
	out, _ := Value(map[string]any{"a@b.io": 1.0, "c@d.io": 2.0, "<REDACTED:email>#2": 3.0}, Policy{})
	m := out.(map[string]any)
	require.Len(t, m, 3)
	var sum float64
	for k, v := range m {
		require.True(t, strings.HasPrefix(k, "<REDACTED:email>"), k)
		sum += v.(float64)
	}
	require.Equal(t, 6.0, sum)
}

func TestValueDeepAndCyclic(t *testing.T) {
	m := map[string]any{}
	m["self"] = m
	out, notes := Value(m, Policy{})
	require.NotNil(t, out)
	require.NotEmpty(t, notes)
}

func TestValueNotePaths(t *testing.T) {
	_, notes := Value(map[string]any{
		"a: b":    map[string]any{"password": "x"},
		"labels":  map[string]any{"k.v": "a@b.io"},
		"x":       []any{"z", []any{"10.0.0.1"}},
		"2fa-key": "token=abc",
	}, Policy{})
	require.Equal(t, []string{
		"2fa-key: secret_assignment",
		`["a\u003a b"].password: secret`,
		`labels["k.v"]: email`,
		"x[1][0]: ipv4",
	}, notes)
	for _, n := range notes {
		path, kind, _ := strings.Cut(n, ": ")
		require.NotContains(t, path, ": ")
		require.NotZero(t, kindBit(Kind(kind)), n)
	}
}
