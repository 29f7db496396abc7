package tests

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/auditcmd"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/witness"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// GET /audit/checkpoint gives a second party the latest checkpoint in a text
// form it saves and later holds the log to (`fabric audit-verify
// -trusted-checkpoint`); the auditor also published it to its checkpoint file,
// cosigned by the (simulated) witness.
func TestCheckpointPublishedAndPinned(t *testing.T) {
	t.Parallel()
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			f := fabrictest.Start(t, fabrictest.Options{Targets: []string{fabric.Auditor}, Store: st,
				Configure: func(c *config.Config) { c.Audit.SimulatedWitness = true }})
			auditor := f.Token(t, "t1", auth.RoleAuditor)
			require.Equal(t, http.StatusNotFound, f.Do(t, http.MethodGet, fabric.Auditor, "/audit/checkpoint", auditor, "").Status, "an empty log")

			svc := f.Token(t, "t1", auth.RoleService)
			for range 3 {
				_, err := appendEvent(t, f, svc, &auditorv1.AppendEntryRequest{ProposalId: ulid.Make().String(), Event: auditlog.EventProposalSubmitted,
					Payload: payload(t, map[string]any{"x": 1.0})})
				require.NoError(t, err)
			}
			for _, role := range []string{auth.RoleAuditor, auth.RoleProposer, auth.RoleApprover, auth.RoleAdmin} {
				require.Equal(t, http.StatusOK, f.Do(t, http.MethodGet, fabric.Auditor, "/audit/checkpoint", f.Token(t, "t1", role), "").Status, role)
			}
			require.Equal(t, http.StatusUnauthorized, f.Do(t, http.MethodGet, fabric.Auditor, "/audit/checkpoint", "", "").Status)

			r := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/checkpoint", auditor, "")
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			var resp auditorv1.GetCheckpointResponse
			require.NoError(t, protojson.Unmarshal(r.Body, &resp))
			c, err := pinned(t, f).VerifyText([]byte(resp.GetText()))
			require.NoError(t, err)
			require.EqualValues(t, 3, c.Size)
			require.Equal(t, auditlog.Origin("t1"), c.Origin)
			require.EqualValues(t, 3, resp.GetCheckpoint().GetSize())

			// Published to the file, cosigned by the witness.
			published, err := os.ReadFile(filepath.Join(f.Cfg.DataDir, auditcmd.DefaultCheckpointFile))
			require.NoError(t, err)
			require.True(t, bytes.Contains(published, []byte(resp.GetText())), "the same text is in the checkpoint file")
			require.Contains(t, resp.GetText(), "— simulated-witness.decision-fabric ")
			wkey, err := os.ReadFile(filepath.Join(f.Cfg.DataDir, "witness", witness.PubFile))
			require.NoError(t, err)
			wv, err := auditlog.NewWitnessVerifier(string(wkey))
			require.NoError(t, err)
			require.NoError(t, auditlog.VerifyCosignature(c, wv))

			// The saved text is what audit-verify holds the log to.
			saved := filepath.Join(t.TempDir(), "t1.checkpoint")
			require.NoError(t, os.WriteFile(saved, []byte(resp.GetText()), 0o644))
			var out, errOut bytes.Buffer
			err = auditcmd.Verify(t.Context(), []string{"-data-dir", f.Cfg.DataDir, "-postgres-dsn", f.Cfg.Integrations.PostgresDSN.Reveal(),
				"-trusted-checkpoint", saved, "-witness-key", filepath.Join(f.Cfg.DataDir, "witness", witness.PubFile), "-max-unsigned", "0"}, &out, &errOut)
			require.NoError(t, err, out.String()+errOut.String())
			require.Contains(t, out.String(), "ok       t1: 3 entries")
		})
	}
}
