package auditlog_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/store"
)

// tamperedLog is tenant "t" with 10 entries (proposals p0, p1, p2 in turn)
// and checkpoints signed at sizes 4 and 8, plus tenant "u" with 3 entries.
func tamperedLog(t *testing.T, d *db) *auditlog.Log {
	t.Helper()
	l := newLog(t, d.st, func(o *auditlog.Options) {
		o.CheckpointEvery = 4
		o.CheckpointInterval = time.Hour
	})
	for i := range 10 {
		mustAppend(t, l, event("t", fmt.Sprintf("p%d", i%3), auditlog.EventProposalSubmitted, i))
		if i == 3 || i == 7 { // let the sequencer sign before the next append
			require.Eventually(t, func() bool {
				c, err := d.st.AuditLog().LatestCheckpoint(t.Context(), "t")
				return err == nil && c.Size == int64(i+1)
			}, 5*time.Second, 5*time.Millisecond)
		}
	}
	appendN(t, l, "u", 3)
	rep, err := l.Verify(t.Context(), "")
	require.NoError(t, err)
	require.NoError(t, rep.Err(), "intact before tampering")
	return l
}

func entry(t *testing.T, d *db, index int64) *store.AuditEntry {
	t.Helper()
	e, err := d.st.AuditLog().Get(t.Context(), "t", index)
	require.NoError(t, err)
	return e
}

// rehash recomputes e's hash after a change, as a tamperer who knows the format would.
func rehash(t *testing.T, e *store.AuditEntry) {
	t.Helper()
	h, err := auditlog.EntryHash(e)
	require.NoError(t, err)
	e.EntryHash = h
}

type exec = func(q string, args ...any)

func TestVerifyNamesTheFirstTamperedEntry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// prepare runs before tampering (e.g. sign a checkpoint over the tail).
		prepare func(t *testing.T, d *db, l *auditlog.Log)
		tamper  func(t *testing.T, d *db) []func(exec)
		kind    string
		index   int64
		// storeOnly: only this process (which appended the entries) can tell.
		storeOnly bool
	}{
		{
			name: "a field updated",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) { x(`UPDATE audit_entries SET actor = 'mallory' WHERE tenant_id = 't' AND idx = 5`) }}
			},
			kind: auditlog.ProblemAltered, index: 5,
		},
		{
			name: "the summary updated",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) {
					x(`UPDATE audit_entries SET summary = $1 WHERE tenant_id = 't' AND idx = 2`, []byte(`{"n":99,"status":"ok"}`))
				}}
			},
			kind: auditlog.ProblemAltered, index: 2,
		},
		{
			name: "a row deleted",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) { x(`DELETE FROM audit_entries WHERE tenant_id = 't' AND idx = 3`) }}
			},
			kind: auditlog.ProblemMissing, index: 3,
		},
		{
			name: "a row deleted and the rest renumbered",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) {
					x(`DELETE FROM audit_entries WHERE tenant_id = 't' AND idx = 3`)
					for i := 4; i < 10; i++ {
						x(`UPDATE audit_entries SET idx = $1 WHERE tenant_id = 't' AND idx = $2`, i-1, i)
					}
				}}
			},
			kind: auditlog.ProblemMissing, index: 3,
		},
		{
			name: "the last row deleted (a checkpoint covers it)",
			prepare: func(t *testing.T, d *db, l *auditlog.Log) {
				_, err := l.Checkpoint(t.Context(), "t")
				require.NoError(t, err)
			},
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) { x(`DELETE FROM audit_entries WHERE tenant_id = 't' AND idx = 9`) }}
			},
			kind: auditlog.ProblemMissing, index: 9,
		},
		{
			name: "the last row deleted (not signed yet)",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) { x(`DELETE FROM audit_entries WHERE tenant_id = 't' AND idx = 9`) }}
			},
			kind: auditlog.ProblemMissing, index: 9, storeOnly: true,
		},
		{
			name: "two rows swapped",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return []func(exec){func(x exec) {
					x(`UPDATE audit_entries SET idx = 1000 WHERE tenant_id = 't' AND idx = 2`)
					x(`UPDATE audit_entries SET idx = 2 WHERE tenant_id = 't' AND idx = 6`)
					x(`UPDATE audit_entries SET idx = 6 WHERE tenant_id = 't' AND idx = 1000`)
				}}
			},
			kind: auditlog.ProblemReordered, index: 2,
		},
		{
			name: "a row altered and its hash recomputed",
			tamper: func(t *testing.T, d *db) []func(exec) {
				e := entry(t, d, 5)
				e.Event = auditlog.EventProposalRolledBack
				rehash(t, e)
				return []func(exec){func(x exec) {
					x(`UPDATE audit_entries SET event = $1, entry_hash = $2 WHERE tenant_id = 't' AND idx = 5`, e.Event, e.EntryHash)
				}}
			},
			kind: auditlog.ProblemRehashed, index: 5,
		},
		{
			name: "a row altered and the chain rebuilt after it",
			tamper: func(t *testing.T, d *db) []func(exec) {
				return rewriteFrom5(t, d)
			},
			// Only the checkpoint at 8 can tell; 4 is the first entry it signs that the one at 4 does not.
			kind: auditlog.ProblemRewritten, index: 4,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eachBackend(t, func(t *testing.T, d *db) {
				l := tamperedLog(t, d)
				if tc.prepare != nil {
					tc.prepare(t, d, l)
				}
				d.tamper(t, tc.tamper(t, d)...)

				rep, err := l.Verify(t.Context(), "")
				require.NoError(t, err)
				require.Len(t, rep.Tenants, 2)
				tr := rep.Tenants[0]
				require.Equal(t, "t", tr.TenantID)
				require.NotNil(t, tr.Problem, "tampering detected")
				require.Equal(t, tc.kind, tr.Problem.Kind, tr.Problem.Detail)
				require.Equal(t, tc.index, tr.Problem.Index, tr.Problem.Detail)
				require.True(t, rep.Tenants[1].OK(), "tenant u's log is intact")

				err = rep.Err()
				var te *auditlog.TamperError
				require.ErrorAs(t, err, &te)
				require.Equal(t, tc.index, te.Problem.Index)
				require.ErrorIs(t, err, auditlog.ErrCorrupt)
				require.Contains(t, err.Error(), "entry ")

				// The same, from the store and the public keys alone.
				alone, err := auditlog.VerifyStore(t.Context(), d.st, testKeys.Verifier(), "t")
				require.NoError(t, err)
				if tc.storeOnly {
					require.True(t, alone.OK(), "without a checkpoint covering it, a cut tail is only visible to a process that saw it")
				} else {
					require.Equal(t, tr.Problem, alone.Tenants[0].Problem)
				}
			})
		})
	}
}

// A stored row altered without its hash is never served: the trail of its
// proposal fails closed, other proposals are still served.
func TestTrailRefusesAlteredEntries(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d *db) {
		l := tamperedLog(t, d)
		d.tamper(t, func(x exec) { x(`UPDATE audit_entries SET actor = 'mallory' WHERE tenant_id = 't' AND idx = 5`) })
		_, err := l.Trail(t.Context(), "t", "p2") // 5 % 3
		require.ErrorIs(t, err, auditlog.ErrCorrupt)
		tr, err := l.Trail(t.Context(), "t", "p0")
		require.NoError(t, err)
		verifyTrail(t, "t", tr)
	})
}

func TestVerifyChecksCheckpointSignatures(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d *db) {
		l := tamperedLog(t, d)
		other, err := auditlog.GenerateKeys()
		require.NoError(t, err)
		forgedLog := newLog(t, openDB(t, d.backend).st, func(o *auditlog.Options) { o.Keys = other })
		appendN(t, forgedLog, "t", 4)
		forged, err := forgedLog.Checkpoint(t.Context(), "t")
		require.NoError(t, err)

		d.tamper(t,
			func(x exec) { // the root of checkpoint 4 changed in its column only
				x(`UPDATE audit_checkpoints SET root_hash = $1 WHERE tenant_id = 't' AND size = 4`, "00"+entry(t, d, 0).EntryHash[2:])
			},
			func(x exec) { // checkpoint 8 replaced by one signed with another key
				x(`UPDATE audit_checkpoints SET note = $1, mldsa65_signature = $2 WHERE tenant_id = 't' AND size = 8`,
					string(forged.Note), base64.StdEncoding.EncodeToString(forged.MLDSASignature))
			},
		)
		rep, err := l.Verify(t.Context(), "t")
		require.NoError(t, err)
		tr := rep.Tenants[0]
		require.Nil(t, tr.Problem, "the entries themselves are intact")
		require.Len(t, tr.CheckpointProblems, 2)
		require.Contains(t, tr.CheckpointProblems[0].Detail, "size 4")
		require.Contains(t, tr.CheckpointProblems[1].Detail, "size 8")
		require.Zero(t, tr.Checkpoints)
		require.False(t, rep.OK())
		var te *auditlog.TamperError
		require.True(t, errors.As(rep.Err(), &te))
		require.EqualValues(t, -1, te.Problem.Index)

		// Serving fails closed on a forged checkpoint too.
		_, err = newLog(t, d.st).Trail(t.Context(), "t", "p0")
		require.ErrorIs(t, err, auditlog.ErrCorrupt)
	})
}
