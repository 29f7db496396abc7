package auditlog_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auditlog"
)

// publishingLog is tenant "t" with 10 entries and checkpoints at 4, 8 and 10,
// each also published to a checkpoint file, plus tenant "u" with 3 entries
// under a checkpoint at 3. It returns the log and the file's path.
func publishingLog(t *testing.T, d *db) (*auditlog.Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "published", "checkpoints")
	l := newLog(t, d.st, func(o *auditlog.Options) {
		o.CheckpointEvery = 4
		o.CheckpointInterval = time.Hour
		o.CheckpointFile = path
	})
	for i := range 10 {
		mustAppend(t, l, event("t", fmt.Sprintf("p%d", i%3), auditlog.EventProposalSubmitted, i))
		if i == 3 || i == 7 {
			require.Eventually(t, func() bool {
				c, err := d.st.AuditLog().LatestCheckpoint(t.Context(), "t")
				return err == nil && c.Size == int64(i+1)
			}, 5*time.Second, 5*time.Millisecond)
		}
	}
	_, err := l.Checkpoint(t.Context(), "t")
	require.NoError(t, err)
	appendN(t, l, "u", 3)
	_, err = l.Checkpoint(t.Context(), "u")
	require.NoError(t, err)
	return l, path
}

// The three cuts of issue #9 by someone with database access (the
// append-only triggers dropped): each fails verification, naming what is
// missing, from the store alone once the unsigned tail is older than the
// bound, at once against the published checkpoints, and the auditor refuses
// to start over it.
func TestVerifyRefusesCutLogs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		tamper func(t *testing.T, d *db) []func(exec)
		// From the store alone (verifier clock one hour on); "" when the store
		// alone cannot tell (the cut ends exactly at a stored checkpoint).
		storeKind, storeDetail string
		storeIndex             int64
		// Against the published checkpoints.
		pubKind, pubDetail string
		pubIndex           int64
	}{
		{
			name: "a: newest entries cut with the newer checkpoints",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) {
					x(`DELETE FROM audit_entries WHERE tenant_id = 't' AND idx >= 6`)
					x(`DELETE FROM audit_checkpoints WHERE tenant_id = 't' AND size > 4`)
				}}
			},
			storeKind: auditlog.ProblemUnsigned, storeIndex: 4,
			storeDetail: "entries 4..5 are not covered by any signed checkpoint",
			pubKind:     auditlog.ProblemMissing, pubIndex: 6,
			pubDetail: "checkpoint size 10 > log size 6: entries 6..9 missing",
		},
		{
			name: "a: newest entries cut back to a stored checkpoint",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) {
					x(`DELETE FROM audit_entries WHERE tenant_id = 't' AND idx >= 4`)
					x(`DELETE FROM audit_checkpoints WHERE tenant_id = 't' AND size > 4`)
				}}
			},
			pubKind: auditlog.ProblemMissing, pubIndex: 4,
			pubDetail: "checkpoint size 10 > log size 4: entries 4..9 missing",
		},
		{
			name: "b: every checkpoint deleted",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) { x(`DELETE FROM audit_checkpoints WHERE tenant_id = 't'`) }}
			},
			storeKind: auditlog.ProblemUnsigned, storeIndex: 0,
			storeDetail: "no signed checkpoint: entries 0..9 are not covered by any signed checkpoint",
			pubKind:     auditlog.ProblemCheckpoint, pubIndex: -1,
			pubDetail: "the published checkpoint of size 4 is not stored: stored checkpoints were deleted",
		},
		{
			name: "b: every checkpoint and the newest entries deleted",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) {
					x(`DELETE FROM audit_checkpoints WHERE tenant_id = 't'`)
					x(`DELETE FROM audit_entries WHERE tenant_id = 't' AND idx >= 2`)
				}}
			},
			storeKind: auditlog.ProblemUnsigned, storeIndex: 0,
			storeDetail: "no signed checkpoint: entries 0..1 are not covered by any signed checkpoint",
			pubKind:     auditlog.ProblemMissing, pubIndex: 2,
			pubDetail: "checkpoint size 10 > log size 2: entries 2..9 missing",
		},
		{
			name: "c: an entry rewritten, the chain rebuilt, the checkpoints after it deleted",
			tamper: func(t *testing.T, d *db) []func(exec) {
				fixes := []func(exec){func(x exec) { x(`DELETE FROM audit_checkpoints WHERE tenant_id = 't' AND size > 4`) }}
				return append(fixes, rewriteFrom5(t, d)...)
			},
			storeKind: auditlog.ProblemUnsigned, storeIndex: 4,
			storeDetail: "entries 4..9 are not covered by any signed checkpoint",
			pubKind:     auditlog.ProblemRewritten, pubIndex: 4,
			pubDetail: "entries 4 to 7 no longer have the root of the published checkpoint of size 8",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eachBackend(t, func(t *testing.T, d *db) {
				l, path := publishingLog(t, d)
				v := testKeys.Verifier()
				published, torn, err := auditlog.ReadCheckpointFile(path, v)
				require.NoError(t, err)
				require.Zero(t, torn)
				require.Len(t, published, 4, "t at 4, 8, 10 and u at 3")

				// Intact: every view verifies, now and later.
				later := func() time.Time { return time.Now().Add(time.Hour) }
				for _, o := range []auditlog.VerifyOptions{{}, {Now: later}, {Published: published, Now: later}} {
					rep, err := auditlog.VerifyStoreWith(t.Context(), d.st, v, o)
					require.NoError(t, err)
					require.NoError(t, rep.Err())
				}

				d.tamper(t, tc.tamper(t, d)...)

				check := func(o auditlog.VerifyOptions, kind, detail string, index int64) {
					t.Helper()
					rep, err := auditlog.VerifyStoreWith(t.Context(), d.st, v, o)
					require.NoError(t, err)
					require.Len(t, rep.Tenants, 2)
					require.True(t, rep.Tenants[1].OK(), "tenant u is intact")
					tr := rep.Tenants[0]
					if kind == "" {
						require.True(t, tr.OK(), "the store alone cannot tell")
						return
					}
					require.False(t, tr.OK())
					p := tr.Problem
					if p == nil {
						p = &tr.CheckpointProblems[0]
					}
					require.Equal(t, kind, p.Kind, p.Detail)
					require.Equal(t, index, p.Index, p.Detail)
					require.Contains(t, p.Detail, detail)
					require.ErrorIs(t, rep.Err(), auditlog.ErrCorrupt)
				}
				check(auditlog.VerifyOptions{Now: later}, tc.storeKind, tc.storeDetail, tc.storeIndex)
				if tc.pubKind != "" {
					// Against the published checkpoints, at once (no clock shift).
					check(auditlog.VerifyOptions{Published: published}, tc.pubKind, tc.pubDetail, tc.pubIndex)
				}
				// The process that appended the entries sees the cut too.
				rep, err := l.Verify(t.Context(), "t")
				require.NoError(t, err)
				require.False(t, rep.OK())

				// A restarted auditor refuses to sign over the cut store.
				restarted, err := auditlog.New(auditlog.Options{Store: d.st, Keys: testKeys, CheckpointFile: path})
				if tc.pubKind == auditlog.ProblemCheckpoint {
					require.NoError(t, err, "the store still holds every published entry")
					require.NoError(t, restarted.Close())
					return
				}
				require.ErrorIs(t, err, auditlog.ErrBehind)
				require.Contains(t, err.Error(), `tenant "t"`)
			})
		})
	}
}
