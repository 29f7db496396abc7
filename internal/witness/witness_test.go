package witness_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/witness"
)

var logKeys = func() *auditlog.Keys {
	k, err := auditlog.GenerateKeys()
	if err != nil {
		panic(err)
	}
	return k
}()

func newWitness(t *testing.T) (*witness.Witness, string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "witness")
	vkey, err := witness.GenerateKey(dir, "witness.example")
	require.NoError(t, err)
	w, err := witness.Open(dir, logKeys.Verifier().NoteVerifierKey())
	require.NoError(t, err)
	return w, dir, vkey
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: filepath.Join(t.TempDir(), "data")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// newLog is an audit log of st whose checkpoints go to the witness through c.
func newLog(t *testing.T, st store.Store, c auditlog.Cosigner) *auditlog.Log {
	t.Helper()
	l, err := auditlog.New(auditlog.Options{Store: st, Keys: logKeys, Witness: c, CheckpointEvery: 1 << 20, CheckpointInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func appendN(t *testing.T, l *auditlog.Log, actor string, n int) {
	t.Helper()
	for i := range n {
		_, _, err := l.Append(t.Context(), auditlog.Event{TenantID: "t1", ProposalID: fmt.Sprintf("p%d", i), Event: auditlog.EventProposalSubmitted,
			Actor: actor, Payload: map[string]any{"i": i}})
		require.NoError(t, err)
	}
}

// The auditor sends each checkpoint to the witness, in process and over
// HTTP; the cosignature is stored with the checkpoint, and a verifier that
// requires the witness accepts the log.
func TestWitnessCosignsAConsistentLog(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"local", "http"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			w, _, vkey := newWitness(t)
			c := witness.Local(w)
			if transport == "http" {
				srv := httptest.NewServer(w.Handler())
				t.Cleanup(srv.Close)
				var err error
				c, err = witness.NewClient(srv.URL, vkey)
				require.NoError(t, err)
			}
			st := openStore(t)
			l := newLog(t, st, c)
			for _, n := range []int{3, 5, 1} {
				appendN(t, l, "svc", n)
				cp, err := l.Checkpoint(t.Context(), "t1")
				require.NoError(t, err)
				wv, err := auditlog.NewWitnessVerifier(vkey)
				require.NoError(t, err)
				require.NoError(t, auditlog.VerifyCosignature(cp, wv), "cosigned at size %d", cp.Size)
			}
			require.EqualValues(t, 9, w.Size(auditlog.Origin("t1")))
			wv, err := auditlog.NewWitnessVerifier(vkey)
			require.NoError(t, err)
			rep, err := auditlog.VerifyStoreWith(t.Context(), st, logKeys.Verifier(), auditlog.VerifyOptions{Witnesses: []witness.Verifier{wv}, MaxUnsigned: -1})
			require.NoError(t, err)
			require.NoError(t, rep.Err())
			require.EqualValues(t, 9, rep.Tenants[0].Covered)
		})
	}
}

// A log rewritten or cut after the witness saw it (a restarted auditor over
// a forged store, signing with the genuine keys) gets no cosignature, and a
// verifier requiring the witness refuses it; the witness remembers across a
// restart.
func TestWitnessRefusesAnInconsistentCheckpoint(t *testing.T) {
	t.Parallel()
	w, dir, vkey := newWitness(t)
	genuine := newLog(t, openStore(t), witness.Local(w))
	appendN(t, genuine, "svc", 8)
	cp8, err := genuine.Checkpoint(t.Context(), "t1")
	require.NoError(t, err)
	wv, err := auditlog.NewWitnessVerifier(vkey)
	require.NoError(t, err)
	require.NoError(t, auditlog.VerifyCosignature(cp8, wv))

	// The witness restarts: its state survives.
	w, err = witness.Open(dir, logKeys.Verifier().NoteVerifierKey())
	require.NoError(t, err)
	require.EqualValues(t, 8, w.Size(auditlog.Origin("t1")))

	// A rewrite: the same keys sign a log whose entries differ ("mallory").
	forgedStore := openStore(t)
	forged := newLog(t, forgedStore, witness.Local(w))
	appendN(t, forged, "mallory", 10)
	cp10, err := forged.Checkpoint(t.Context(), "t1")
	require.NoError(t, err)
	require.ErrorIs(t, auditlog.VerifyCosignature(cp10, wv), auditlog.ErrNotCosigned, "stored without a cosignature")
	rep, err := auditlog.VerifyStoreWith(t.Context(), forgedStore, logKeys.Verifier(), auditlog.VerifyOptions{Witnesses: []witness.Verifier{wv}, MaxUnsigned: -1})
	require.NoError(t, err)
	tr := rep.Tenants[0]
	require.Equal(t, auditlog.ProblemUnsigned, tr.Problem.Kind)
	require.Contains(t, tr.Problem.Detail, "entries 0..9 are not covered by any checkpoint cosigned by witness.example")
	// Without the witness requirement, the forgery verifies: the witness is what tells.
	rep, err = auditlog.VerifyStoreWith(t.Context(), forgedStore, logKeys.Verifier(), auditlog.VerifyOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())

	// Directly: a proof from 8 in the forged tree does not verify; a
	// rollback to a smaller checkpoint is refused; a wrong old size is a conflict.
	proof, err := forged.ConsistencyProof(t.Context(), "t1", 8, 10)
	require.NoError(t, err)
	_, err = w.Add(t.Context(), 8, proof, cp10.Note)
	require.ErrorIs(t, err, witness.ErrInconsistent)

	cutStore := openStore(t)
	cut := newLog(t, cutStore, nil)
	appendN(t, cut, "svc", 5)
	cp5, err := cut.Checkpoint(t.Context(), "t1")
	require.NoError(t, err)
	_, err = w.Add(t.Context(), 8, nil, cp5.Note)
	require.ErrorIs(t, err, witness.ErrInconsistent)
	require.Contains(t, err.Error(), "rolled back")
	var conflict *witness.ConflictError
	_, err = w.Add(t.Context(), 0, nil, cp5.Note)
	require.ErrorAs(t, err, &conflict)
	require.EqualValues(t, 8, conflict.Size)

	// Not signed by the log's key.
	other, err := auditlog.GenerateKeys()
	require.NoError(t, err)
	stranger, err := auditlog.New(auditlog.Options{Store: openStore(t), Keys: other})
	require.NoError(t, err)
	t.Cleanup(func() { stranger.Close() })
	appendN(t, stranger, "svc", 9)
	cpX, err := stranger.Checkpoint(t.Context(), "t1")
	require.NoError(t, err)
	_, err = w.Add(t.Context(), 8, nil, cpX.Note)
	require.ErrorIs(t, err, witness.ErrBadSignature)

	// The genuine log goes on and is cosigned.
	appendN(t, genuine, "svc", 2)
	cpG, err := genuine.Checkpoint(t.Context(), "t1")
	require.NoError(t, err)
	require.NoError(t, auditlog.VerifyCosignature(cpG, wv))
	raw, err := os.ReadFile(filepath.Join(dir, witness.StateFile))
	require.NoError(t, err)
	require.Contains(t, string(raw), "\\n10\\n")
}

// The HTTP handler speaks tlog-witness's status codes.
func TestWitnessHTTPStatus(t *testing.T) {
	t.Parallel()
	w, _, _ := newWitness(t)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	l := newLog(t, openStore(t), nil)
	appendN(t, l, "svc", 3)
	cp, err := l.Checkpoint(t.Context(), "t1")
	require.NoError(t, err)
	post := func(body string) (int, string) {
		resp, err := srv.Client().Post(srv.URL+witness.AddCheckpointPath, "text/plain", stringsReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b := make([]byte, 512)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	code, body := post("old 0\n\n" + string(cp.Note))
	require.Equal(t, 200, code)
	require.Contains(t, body, "— witness.example ")
	code, body = post("old 0\n\n" + string(cp.Note))
	require.Equal(t, 409, code)
	require.Equal(t, "3\n", body)
	code, _ = post("old 3\n\n" + string(cp.Note)) // the same checkpoint again
	require.Equal(t, 200, code)
	code, _ = post("old x\n\n" + string(cp.Note))
	require.Equal(t, 400, code)
	code, _ = post("old 3\n\n" + string(cp.Note[:len(cp.Note)-10]) + "AAAAAAAAA\n")
	require.Contains(t, []int{400, 403}, code)
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\nbody\n"))
	f.Add([]byte("old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nx"))
	f.Add([]byte("old 01\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		old, proof, signed, err := witness.ParseRequest(body)
		if err != nil {
			return
		}
		for _, h := range proof {
			require.Len(t, h, 32)
		}
		again, proof2, signed2, err := witness.ParseRequest(witness.FormatRequest(old, proof, signed))
		require.NoError(t, err)
		require.Equal(t, old, again)
		require.Equal(t, proof, proof2)
		require.Equal(t, signed, signed2)
	})
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
