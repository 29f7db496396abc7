package integration

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
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

// TestDeepJSONIsRefusedNamingTheLimit: parameters nested 5000 deep (which the gRPC
// decoder cannot even read) and 33 deep (which it can) are both a 400 naming the
// limit over REST, and the second is INVALID_ARGUMENT over gRPC too.
func TestDeepJSONIsRefusedNamingTheLimit(t *testing.T) {
	nested := func(depth int) string {
		return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	}
	eachStore(t, func(t *testing.T, st fabrictest.Store) {
		f := allInOne(t, st, fabrictest.Options{})
		tok := f.Token(t, "t1", auth.RoleProposer)
		post := func(params string) fabrictest.Response {
			return f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok,
				`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":{"d":`+params+`}}}`)
		}
		r := post(nested(5000))
		require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "JSON nesting depth exceeds 48 at manifest.parameters.d")

		r = post(nested(32))
		require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "manifest.parameters: nesting depth exceeds 32")

		r = post(`[` + strings.Repeat("0,", 10_000) + `0]`)
		require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "manifest.parameters: more than 10000 values")

		req := &coordinatorv1.SubmitProposalRequest{}
		require.NoError(t, protojson.Unmarshal([]byte(`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":`+nested(33)+`}}`), req))
		_, err := coordinatorv1.NewCoordinatorServiceClient(f.Conn(t, fabric.Coordinator)).SubmitProposal(fabrictest.WithToken(context.Background(), tok), req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		require.Contains(t, status.Convert(err).Message(), "manifest.parameters: nesting depth exceeds 32")

		list, err := coordinatorv1.NewCoordinatorServiceClient(f.Conn(t, fabric.Coordinator)).ListProposals(fabrictest.WithToken(context.Background(), tok), &coordinatorv1.ListProposalsRequest{})
		require.NoError(t, err)
		require.Empty(t, list.GetProposals(), "nothing was stored")
	})
}
