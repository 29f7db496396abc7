package redact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("token=lv-secret-1") }

type nilStringer struct{ p *string }

func (n *nilStringer) String() string { return *n.p }

func newTestLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(NewHandler(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

func TestHandlerRedacts(t *testing.T) {
	var buf bytes.Buffer
	log := newTestLogger(&buf)

	raw := []string{
		"hunter2", "sk-live-abc", "s3cr3t-dsn", "alice@example.com", "bob@example.com",
		"carol@example.com", "dave@example.com", "7946 0958", "10.0.0.1", "4111111111111111",
		"grp-pass", "lv-secret-1", "err-pw", "Ada", "stringer-pw", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
		"with-secret", "nested-secret", "dsn-pw",
	}

	l := log.With("password", "hunter2", "requester", "alice@example.com").
		WithGroup("req").
		With(slog.String("api_key", "sk-live-abc"), slog.Int("attempt", 1))
	l.Info("login for bob@example.com from 10.0.0.1 with Bearer "+testJWT,
		"dsn", "postgres://app:s3cr3t-dsn@db/x",
		"note", "call +44 20 7946 0958",
		"card", int64(4111111111111111),
		"err", errors.New("auth failed: password=err-pw for carol@example.com"),
		"peer", stringer{"dave@example.com"},
		"remote", net.ParseIP("10.0.0.1"),
		"lv", valuer{},
		"first_name", "Ada",
		slog.Group("creds", slog.String("user", "u"), slog.String("secret", "grp-pass")),
		slog.Group("conn", slog.String("url", "redis://:dsn-pw@cache:6379")),
		"payload", map[string]any{"token": "nested-secret", "ok": true},
		"status", 200,
	)
	log.WithGroup("credentials").Info("hi", "anything", "with-secret", slog.Group("g", "x", "nested-secret"))
	log.Debug("stringer", "s", stringer{"password=stringer-pw"}, "nilptr", &nilStringer{})

	out := buf.String()
	for _, r := range raw {
		require.NotContains(t, out, r)
	}
	require.Contains(t, out, Placeholder)

	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	require.Equal(t, "login for <REDACTED:email> from <REDACTED:ipv4> with Bearer <REDACTED>", rec["msg"])
	require.Equal(t, "<REDACTED>", rec["password"])
	require.Equal(t, "<REDACTED:email>", rec["requester"])
	req := rec["req"].(map[string]any)
	require.Equal(t, "<REDACTED>", req["api_key"])
	require.Equal(t, 1.0, req["attempt"])
	require.Equal(t, 200.0, req["status"])
	require.Equal(t, "<REDACTED>", req["dsn"])
	require.Equal(t, "call <REDACTED:phone>", req["note"])
	require.Equal(t, "<REDACTED:card>", req["card"])
	require.Equal(t, "auth failed: password=<REDACTED> for <REDACTED:email>", req["err"])
	require.Equal(t, "<REDACTED:email>", req["peer"])
	require.Equal(t, "<REDACTED:ipv4>", req["remote"])
	require.Equal(t, "token=<REDACTED>", req["lv"])
	require.Equal(t, "<REDACTED>", req["first_name"])
	require.Equal(t, map[string]any{"user": "u", "secret": "<REDACTED>"}, req["creds"])
	require.Equal(t, map[string]any{"url": "redis://:<REDACTED>@cache:6379"}, req["conn"])
	require.Equal(t, map[string]any{"token": "<REDACTED>", "ok": true}, req["payload"])

	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec))
	require.Equal(t, map[string]any{"anything": "<REDACTED>", "g": "<REDACTED>"}, rec["credentials"])

	require.NoError(t, json.Unmarshal([]byte(lines[2]), &rec))
	require.Equal(t, "password=<REDACTED>", rec["s"])
	require.Equal(t, "<REDACTED>", rec["nilptr"])
}

func TestHandlerEnabledAndPassThrough(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	require.False(t, h.Enabled(context.Background(), slog.LevelInfo))
	require.True(t, h.Enabled(context.Background(), slog.LevelError))
	require.Same(t, h, h.WithGroup(""))
	require.Same(t, h, h.WithAttrs(nil))

	slog.New(h).Warn("plain", "n", 3, "ok", true, "s", "hello")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	require.Equal(t, "plain", rec["msg"])
	require.Equal(t, 3.0, rec["n"])
	require.Equal(t, true, rec["ok"])
	require.Equal(t, "hello", rec["s"])
}

func TestHandlerConcurrent(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	base := slog.New(NewHandler(slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &buf}, nil)))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := base.With("password", fmt.Sprintf("pw-%d", g)).WithGroup(fmt.Sprintf("g%d", g))
			for i := 0; i < 50; i++ {
				l.Info("user a@b.io", "token", "tok-secret", "i", i, "ip", "10.0.0.1")
			}
		}()
	}
	wg.Wait()
	out := buf.String()
	require.Equal(t, 400, strings.Count(out, "\n"))
	require.NotContains(t, out, "pw-")
	require.NotContains(t, out, "tok-secret")
	require.NotContains(t, out, "a@b.io")
	require.NotContains(t, out, "10.0.0.1")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
