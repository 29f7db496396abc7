package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// Services own their data: in the seven-process topology with the decision auditor on
// a database of its own, a decision goes through negotiation, scoring and enactment,
// its audit trail lands in the auditor's database only, its proposal in the shared one
// only, and its export (decision record from the coordinator's API, trail from the
// auditor's log) verifies offline with public keys alone.
func TestAuditorOnItsOwnDatabaseExportsVerifiably(t *testing.T) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.Split, Store: st, AuditorOwnStore: true})
			c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
			fabricKey, err := signing.LoadOrCreateSimulationKey(f.Cfg.DataDir)
			require.NoError(t, err)

			m := &typesv1.Manifest{Action: "scale", Target: "serviceO", Regions: []string{"eu-west"}, Impact: "low", TenantId: "t1"}
			m.Parameters, err = structpb.NewStruct(map[string]any{"replicas_delta": 1})
			require.NoError(t, err)
			r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", c.token,
				`{"tenant_id":"t1","manifest":`+manifestJSON(t, m)+`,"signature":`+sign(t, fabricKey, m)+`}`)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			var sub struct{ Proposal proposal }
			require.NoError(t, json.Unmarshal(r.Body, &sub))
			p := c.await(t, sub.Proposal.ID, "PROPOSAL_STATUS_SCORED")
			r = c.post(t, "/proposals/"+p.ID+"/enact", `{}`)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))

			dir := t.TempDir()
			export := filepath.Join(dir, "decision.json")
			code, out := fabricCLI(t, "decision", "export", "-url", f.URL(fabric.Auditor), "-id", p.ID,
				"-token", f.Token(t, "t1", auth.RoleAuditor), "-out", export)
			require.Equal(t, 0, code, out)

			cfgFile := filepath.Join(dir, "fabric.yaml")
			require.NoError(t, os.WriteFile(cfgFile, []byte("data_dir: "+f.Cfg.DataDir+"\n"), 0o600))
			regionKeys := filepath.Join(dir, "region-keys")
			code, out = fabricCLI(t, "region-keys", "export", "-config", cfgFile, "-out", regionKeys)
			require.Equal(t, 0, code, out)
			keys := filepath.Join(f.Cfg.DataDir, "keys")
			code, out = fabricCLI(t, "decision", "verify", "-bundle", export,
				"-cosign-key", filepath.Join(keys, signing.CosignPubFile),
				"-audit-key", filepath.Join(keys, auditlog.Ed25519PubFile),
				"-mldsa-key", filepath.Join(keys, auditlog.MLDSAPubFile),
				"-region-keys", regionKeys)
			require.Equal(t, 0, code, out)
			for _, want := range []string{"ok   manifest signature", "ok   consensus bundle signature", "ok   quorum certificate: AGREED",
				"ok   checkpoint", "ok   audit entry", "ok   status: ENACTED", "verified: decision " + p.ID} {
				require.Contains(t, out, want)
			}

			// Who wrote where: the auditor's database holds the trail and no proposal; the
			// shared one holds the proposal and no audit entry.
			sharedCfg, auditorCfg := f.Stores()
			open := func(cfg store.Config) store.Store {
				s, err := store.Open(context.Background(), cfg)
				require.NoError(t, err)
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
			shared, auditor := open(sharedCfg), open(auditorCfg)
			n, err := auditor.AuditLog().Size(t.Context(), "t1")
			require.NoError(t, err)
			require.Positive(t, n, "the trail is in the auditor's database")
			_, err = auditor.Proposals().Get(t.Context(), "t1", p.ID)
			require.ErrorIs(t, err, store.ErrNotFound, "the auditor's database holds no proposal")
			n, err = shared.AuditLog().Size(t.Context(), "t1")
			require.NoError(t, err)
			require.Zero(t, n, "the shared database holds no audit entry")
			_, err = shared.Proposals().Get(t.Context(), "t1", p.ID)
			require.NoError(t, err)
		})
	}
}
