package integration

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// The attacks of issue #9's "smaller holes", each against the all-in-one fabric on
// both stores.

// eachStore runs scenario once per store, in parallel.
func eachStore(t *testing.T, scenario func(t *testing.T, st fabrictest.Store)) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			scenario(t, st)
		})
	}
}

// allInOne starts the all-in-one fabric on st.
func allInOne(t *testing.T, st fabrictest.Store, opts fabrictest.Options) *fabrictest.Fabric {
	opts.Topology, opts.Store = fabrictest.AllInOne, st
	return fabrictest.Start(t, opts)
}

// syncBuffer is a bytes.Buffer safe for the fabric's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHugeInvalidValueIsNotEchoed: a 900 kB invalid string is refused with a 400
// that names the field and quotes at most a short, marked excerpt, in the body and
// in the log.
func TestHugeInvalidValueIsNotEchoed(t *testing.T) {
	eachStore(t, func(t *testing.T, st fabrictest.Store) {
		logs := &syncBuffer{}
		f := allInOne(t, st, fabrictest.Options{Logs: logs,
			Configure: func(c *config.Config) { c.Telemetry.LogLevel = "info" }})
		tok := f.Token(t, "t1", auth.RoleProposer)
		big := strings.Repeat("A", 900_000)
		for field, body := range map[string]string{
			"manifest.action": `{"tenant_id":"t1","manifest":{"action":"` + big + `","target":"x"}}`,
			"tenant_id":       `{"tenant_id":"` + big + `","manifest":{"action":"scale","target":"x"}}`,
			"regions":         `{"tenant_id":"t1","manifest":{"action":"scale","target":"x","regions":["` + big + `"]}}`,
		} {
			r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok, body)
			require.Contains(t, []int{http.StatusBadRequest, http.StatusForbidden}, r.Status, field)
			require.Less(t, len(r.Body), 2048, "%s: the body echoes the value: %d bytes", field, len(r.Body))
			require.Contains(t, string(r.Body), "…(900000 bytes)", field)
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			require.Less(t, utf8.RuneCountInString(line), 4096, "a log line echoes the value: %.300s", line)
		}
		require.Contains(t, logs.String(), "InvalidArgument", "the refused calls were logged")
	})
}
