// Package tests runs the decision auditor as its own process module (the module graph's
// decision-auditor target, on the platform server with its real interceptor chain) on
// both stores, and checks the I.4.6 behaviour over REST and gRPC: proofs a client can
// verify with nothing but the pinned public keys, snapshots, rollback plans, tenancy,
// the status codes, and that no payload secret or PII reaches a response or a row.
package tests

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func start(t *testing.T, st fabrictest.Store) *fabrictest.Fabric {
	t.Helper()
	return fabrictest.Start(t, fabrictest.Options{Targets: []string{fabric.Auditor}, Store: st})
}

func eachStore(t *testing.T, fn func(t *testing.T, f *fabrictest.Fabric, st fabrictest.Store)) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			fn(t, start(t, st), st)
		})
	}
}

// appendEvent calls AppendEntry over gRPC as a service acting with tok.
func appendEvent(t *testing.T, f *fabrictest.Fabric, tok string, req *auditorv1.AppendEntryRequest) (*auditorv1.AppendEntryResponse, error) {
	t.Helper()
	c := auditorv1.NewAuditorServiceClient(f.Conn(t, fabric.Auditor))
	return c.AppendEntry(fabrictest.WithToken(context.Background(), tok), req)
}

func payload(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}

func trail(t *testing.T, f *fabrictest.Fabric, tok, proposal string) *auditorv1.GetAuditTrailResponse {
	t.Helper()
	r := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+proposal, tok, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out auditorv1.GetAuditTrailResponse
	require.NoError(t, protojson.Unmarshal(r.Body, &out))
	return &out
}

// pinned is the verifier a client obtained out of band: the public key files.
func pinned(t *testing.T, f *fabrictest.Fabric) *auditlog.Verifier {
	t.Helper()
	dir := filepath.Join(f.Cfg.DataDir, "keys")
	vkey, err := os.ReadFile(filepath.Join(dir, auditlog.Ed25519PubFile))
	require.NoError(t, err)
	pub, err := os.ReadFile(filepath.Join(dir, auditlog.MLDSAPubFile))
	require.NoError(t, err)
	v, err := auditlog.NewVerifier(string(vkey), pub)
	require.NoError(t, err)
	return v
}

// verifyTrail checks a response as an outside client: every entry hash recomputed from
// its fields, every inclusion proof against the checkpoint root, the checkpoint's
// Ed25519 note (standard sumdb/note) and ML-DSA-65 signature with the pinned keys.
func verifyTrail(t *testing.T, f *fabrictest.Fabric, tenant string, resp *auditorv1.GetAuditTrailResponse) {
	t.Helper()
	v := pinned(t, f)
	cp := resp.GetCheckpoint()
	require.Equal(t, strings.TrimSpace(v.NoteVerifierKey()), cp.GetNoteVerifierKey())
	require.Equal(t, string(v.MLDSAPublicKeyPEM()), cp.GetMldsa65PublicKey())
	require.Equal(t, v.MLDSAKeyID(), cp.GetMldsa65KeyId())

	nv, err := note.NewVerifier(cp.GetNoteVerifierKey())
	require.NoError(t, err)
	n, err := note.Open([]byte(cp.GetNote()), note.VerifierList(nv))
	require.NoError(t, err, "a standard C2SP note")
	sig, err := base64.StdEncoding.DecodeString(cp.GetMldsa65Signature())
	require.NoError(t, err)
	signed, err := v.Verify([]byte(cp.GetNote()), sig)
	require.NoError(t, err, "Ed25519 and ML-DSA-65 over the same body")
	require.Equal(t, n.Text, string(signed.Body()))
	require.Equal(t, auditlog.Origin(tenant), signed.Origin)
	require.EqualValues(t, signed.Size, cp.GetSize())
	require.Equal(t, hex.EncodeToString(signed.Root), cp.GetRootHash())

	for i, e := range resp.GetEntries() {
		require.Equal(t, tenant, e.GetTenantId())
		h, err := auditlog.EntryHash(&store.AuditEntry{
			TenantID: e.GetTenantId(), Index: e.GetIndex(), ProposalID: e.GetProposalId(), Event: e.GetEvent(),
			Actor: e.GetActor(), TraceID: e.GetTraceId(), PayloadSHA256: e.GetPayloadSha256(), Summary: []byte(e.GetSummary()),
			IdempotencyKey: e.GetIdempotencyKey(), PrevHash: e.GetPrevHash(), CreatedAt: e.GetCreatedAt().AsTime(),
		})
		require.NoError(t, err)
		require.Equal(t, e.GetEntryHash(), h, "entry %d hashes to its entry_hash", i)
		leaf, err := auditlog.LeafHash(e.GetEntryHash())
		require.NoError(t, err)
		var path [][]byte
		for _, p := range e.GetInclusionProof() {
			b, err := hex.DecodeString(p)
			require.NoError(t, err)
			path = append(path, b)
		}
		require.NoError(t, proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(e.GetIndex()), signed.Size, leaf, path, signed.Root))
		if i > 0 {
			require.Greater(t, e.GetIndex(), resp.GetEntries()[i-1].GetIndex(), "in log order")
		}
	}
}

func TestAuditTrailWithVerifiableProofs(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, f *fabrictest.Fabric, _ fabrictest.Store) {
		svc := f.Token(t, "t1", auth.RoleService)
		p1, p2 := ulid.Make().String(), ulid.Make().String()
		events := []string{auditlog.EventProposalSubmitted, auditlog.EventNegotiationVote, auditlog.EventProposalScored,
			auditlog.EventProposalDryRun, auditlog.EventProposalEnacted}
		for i, ev := range events {
			for _, p := range []string{p1, p2} {
				resp, err := appendEvent(t, f, svc, &auditorv1.AppendEntryRequest{
					ProposalId: p, Event: ev, Payload: payload(t, map[string]any{"step": float64(i), "proposal": p}),
				})
				require.NoError(t, err)
				require.True(t, resp.GetCreated())
				require.Equal(t, "test-user", resp.GetEntry().GetActor(), "the token's subject")
			}
		}
		r := f.Do(t, http.MethodPost, fabric.Auditor, "/snapshot/"+p1, f.Token(t, "t1", auth.RoleService),
			`{"kind":"pre","sha256":"`+strings.Repeat("ab", 32)+`"}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))

		resp := trail(t, f, f.Token(t, "t1", auth.RoleAuditor), p1)
		require.Len(t, resp.GetEntries(), len(events)+1)
		for i, ev := range events {
			require.Equal(t, ev, resp.GetEntries()[i].GetEvent())
			require.EqualValues(t, 2*i, resp.GetEntries()[i].GetIndex(), "one log per tenant, interleaved proposals")
		}
		last := resp.GetEntries()[len(events)]
		require.Equal(t, auditlog.EventSnapshotRecorded, last.GetEvent())
		require.JSONEq(t, `{"kind":"pre","sha256":"`+strings.Repeat("ab", 32)+`"}`, last.GetSummary())
		require.EqualValues(t, 2*len(events)+1, resp.GetCheckpoint().GetSize(), "signed on demand over the whole log")
		verifyTrail(t, f, "t1", resp)

		// A later read is proven against a later checkpoint; the two are consistent.
		_, err := appendEvent(t, f, svc, &auditorv1.AppendEntryRequest{ProposalId: p2, Event: auditlog.EventProposalRolledBack,
			PayloadSha256: canonical.SHA256Hex([]byte(`{}`))})
		require.NoError(t, err)
		again := trail(t, f, f.Token(t, "t1", auth.RoleProposer), p2)
		verifyTrail(t, f, "t1", again)
		require.Greater(t, again.GetCheckpoint().GetSize(), resp.GetCheckpoint().GetSize())
	})
}

// The response and the stored rows never hold a payload's secrets or PII.
func TestNoSecretOrPIIInResponsesOrRows(t *testing.T) {
	t.Parallel()
	const email, token, jwt = "alice.smith@example.com", "tok_9f8e7d6c5b4a", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	eachStore(t, func(t *testing.T, f *fabrictest.Fabric, st fabrictest.Store) {
		svc := f.Token(t, "t1", auth.RoleService)
		p := ulid.Make().String()
		resp, err := appendEvent(t, f, svc, &auditorv1.AppendEntryRequest{ProposalId: p, Event: auditlog.EventProposalSubmitted,
			Payload: payload(t, map[string]any{
				"requested_by": "contact " + email + " for details",
				"token":        token,
				"headers":      map[string]any{"authorization": "Bearer " + jwt},
				"email":        email,
				"replicas":     float64(3),
			})})
		require.NoError(t, err)
		require.Contains(t, resp.GetEntry().GetSummary(), `"replicas":3`)

		body := string(f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p, f.Token(t, "t1", auth.RoleAuditor), "").Body)
		require.Contains(t, body, "<REDACTED")
		rows := dumpRows(t, f, st)
		require.Contains(t, rows, p, "the dump holds the entry")
		for _, secret := range []string{email, token, jwt, "alice.smith"} {
			require.NotContains(t, body, secret, "API response")
			require.NotContains(t, resp.String(), secret, "AppendEntry response")
			require.NotContains(t, rows, secret, "stored rows")
		}
	})
}

// dumpRows returns every column of every audit row, read straight from the database.
func dumpRows(t *testing.T, f *fabrictest.Fabric, st fabrictest.Store) string {
	t.Helper()
	const q = `SELECT tenant_id, idx, proposal_id, event, actor, trace_id, payload_sha256, CAST(summary AS TEXT),
		idempotency_key, prev_hash, entry_hash FROM audit_entries`
	var b strings.Builder
	if st == fabrictest.Postgres {
		conn, err := pgx.Connect(t.Context(), f.Cfg.Integrations.PostgresDSN.Reveal())
		require.NoError(t, err)
		defer conn.Close(context.Background())
		rs, err := conn.Query(t.Context(), q)
		require.NoError(t, err)
		for rs.Next() {
			vals, err := rs.Values()
			require.NoError(t, err)
			fmt.Fprintln(&b, vals...)
		}
		require.NoError(t, rs.Err())
		rs, err = conn.Query(t.Context(), `SELECT note, root_hash FROM audit_checkpoints`)
		require.NoError(t, err)
		for rs.Next() {
			vals, err := rs.Values()
			require.NoError(t, err)
			fmt.Fprintln(&b, vals...)
		}
		return b.String()
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(f.Cfg.DataDir, store.SQLiteFileName)+"?_pragma=query_only(1)")
	require.NoError(t, err)
	defer db.Close()
	for _, query := range []string{q, `SELECT note, root_hash FROM audit_checkpoints`} {
		rs, err := db.QueryContext(t.Context(), query)
		require.NoError(t, err)
		cols, err := rs.Columns()
		require.NoError(t, err)
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rs.Scan(ptrs...))
			for _, v := range vals {
				fmt.Fprintf(&b, "%s ", v)
			}
			b.WriteByte('\n')
		}
		require.NoError(t, rs.Err())
		rs.Close()
	}
	return b.String()
}

func TestRESTStatusCodes(t *testing.T) {
	t.Parallel()
	f := start(t, fabrictest.SQLite)
	p := ulid.Make().String()
	service := f.Token(t, "t1", auth.RoleService)
	auditor := f.Token(t, "t1", auth.RoleAuditor)
	sha := strings.Repeat("0f", 32)
	snap := func(kind, sum string) string { return fmt.Sprintf(`{"kind":%q,"sha256":%q}`, kind, sum) }

	for _, c := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"a proposer cannot write", http.MethodPost, "/snapshot/" + p, f.Token(t, "t1", auth.RoleProposer), snap("pre", sha), http.StatusForbidden},
		{"record pre", http.MethodPost, "/snapshot/" + p, service, snap("pre", sha), http.StatusOK},
		{"record pre again", http.MethodPost, "/snapshot/" + p, service, snap("pre", sha), http.StatusConflict},
		{"record pre again, other hash", http.MethodPost, "/snapshot/" + p, service, snap("pre", strings.Repeat("1", 64)), http.StatusConflict},
		{"kind during", http.MethodPost, "/snapshot/" + p, service, snap("during", sha), http.StatusBadRequest},
		{"short sha", http.MethodPost, "/snapshot/" + p, service, snap("post", "00"), http.StatusBadRequest},
		{"upper-case sha", http.MethodPost, "/snapshot/" + p, service, snap("post", strings.ToUpper(sha)), http.StatusBadRequest},
		{"unknown field", http.MethodPost, "/snapshot/" + p, service, `{"kind":"post","sha256":"` + sha + `","x":1}`, http.StatusBadRequest},
		{"bad proposal id", http.MethodGet, "/audit/a%40b.example", auditor, "", http.StatusBadRequest},
		{"no token", http.MethodGet, "/audit/" + p, "", "", http.StatusUnauthorized},
		{"no token, write", http.MethodPost, "/snapshot/" + p, "", snap("post", sha), http.StatusUnauthorized},
		{"bad token", http.MethodGet, "/audit/" + p, "not-a-jwt", "", http.StatusUnauthorized},
		{"auditor cannot write", http.MethodPost, "/snapshot/" + p, auditor, snap("post", sha), http.StatusForbidden},
		{"unknown proposal", http.MethodGet, "/audit/" + ulid.Make().String(), auditor, "", http.StatusNotFound},
		{"read", http.MethodGet, "/audit/" + p, auditor, "", http.StatusOK},
		{"approver reads", http.MethodGet, "/audit/" + p, f.Token(t, "t1", auth.RoleApprover), "", http.StatusOK},
		{"rollback plan without post", http.MethodPost, "/audit/" + p + "/rollback-plan", auditor, `{}`, http.StatusConflict},
		{"rollback plan, nothing recorded", http.MethodPost, "/audit/" + ulid.Make().String() + "/rollback-plan", auditor, `{}`, http.StatusNotFound},
	} {
		r := f.Do(t, c.method, fabric.Auditor, c.path, c.token, c.body)
		require.Equal(t, c.want, r.Status, "%s: %s", c.name, r.Body)
	}
	// No route changes or removes an entry (the gateway answers 501 "Method Not Allowed").
	for _, method := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete} {
		r := f.Do(t, method, fabric.Auditor, "/audit/"+p, service, `{}`)
		require.Contains(t, []int{http.StatusMethodNotAllowed, http.StatusNotImplemented}, r.Status, "%s: %s", method, r.Body)
		require.Contains(t, string(r.Body), "Method Not Allowed")
	}
	require.Len(t, trail(t, f, auditor, p).GetEntries(), 1)
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, f *fabrictest.Fabric, _ fabrictest.Store) {
		p := ulid.Make().String()
		sha := strings.Repeat("ab", 32)
		body := `{"kind":"pre","sha256":"` + sha + `"}`
		r := f.Do(t, http.MethodPost, fabric.Auditor, "/snapshot/"+p, f.Token(t, "t1", auth.RoleService), body)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))

		t2, t2svc := f.Token(t, "t2", auth.RoleAuditor), f.Token(t, "t2", auth.RoleService)
		require.Equal(t, http.StatusNotFound, f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p, t2, "").Status,
			"another tenant's trail does not exist")
		require.Equal(t, http.StatusNotFound, f.Do(t, http.MethodPost, fabric.Auditor, "/audit/"+p+"/rollback-plan", t2, `{}`).Status)
		r = f.Do(t, http.MethodPost, fabric.Auditor, "/snapshot/"+p, t2svc, body)
		require.Equal(t, http.StatusOK, r.Status, "the same proposal id in another tenant is another log: %s", r.Body)
		var rec auditorv1.RecordSnapshotResponse
		require.NoError(t, protojson.Unmarshal(r.Body, &rec))
		require.EqualValues(t, 0, rec.GetEntry().GetIndex(), "t2's log starts at 0")
		require.Equal(t, "t2", rec.GetEntry().GetTenantId())

		// A tenant cannot be named in a request: it is always the token's.
		resp := trail(t, f, t2, p)
		require.Len(t, resp.GetEntries(), 1)
		require.Equal(t, "t2", resp.GetEntries()[0].GetTenantId())
		verifyTrail(t, f, "t2", resp)
		require.Equal(t, auditlog.Origin("t2"), resp.GetCheckpoint().GetOrigin())
	})
}

func TestRollbackPlan(t *testing.T) {
	t.Parallel()
	f := start(t, fabrictest.SQLite)
	p := ulid.Make().String()
	tok := f.Token(t, "t1", auth.RoleService)
	pre, post := strings.Repeat("aa", 32), strings.Repeat("bb", 32)
	for _, s := range [][2]string{{"pre", pre}, {"post", post}} {
		r := f.Do(t, http.MethodPost, fabric.Auditor, "/snapshot/"+p, tok, fmt.Sprintf(`{"kind":%q,"sha256":%q}`, s[0], s[1]))
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	}
	r := f.Do(t, http.MethodPost, fabric.Auditor, "/audit/"+p+"/rollback-plan", f.Token(t, "t1", auth.RoleAuditor), `{}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var plan auditorv1.PlanRollbackResponse
	require.NoError(t, protojson.Unmarshal(r.Body, &plan))
	require.Equal(t, post, plan.GetFromSha256())
	require.Equal(t, pre, plan.GetToSha256())
	require.True(t, plan.GetDryRunOnly(), "simulation")
	require.False(t, plan.GetNoop())
	require.False(t, plan.GetAlreadyRolledBack())
	require.Contains(t, plan.GetSteps()[0], "dry run")
	require.NotEmpty(t, plan.GetPreSnapshot().GetInclusionProof())
	verifyTrail(t, f, "t1", &auditorv1.GetAuditTrailResponse{
		Entries: []*auditorv1.AuditEntry{plan.GetPreSnapshot(), plan.GetPostSnapshot()}, Checkpoint: plan.GetCheckpoint()})

	_, err := appendEvent(t, f, f.Token(t, "t1", auth.RoleService), &auditorv1.AppendEntryRequest{
		ProposalId: p, Event: auditlog.EventProposalRolledBack, Payload: payload(t, map[string]any{"from": post, "to": pre})})
	require.NoError(t, err)
	r = f.Do(t, http.MethodPost, fabric.Auditor, "/audit/"+p+"/rollback-plan", tok, `{}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.NoError(t, protojson.Unmarshal(r.Body, &plan))
	require.True(t, plan.GetAlreadyRolledBack())
}

func TestAppendEntryOverGRPC(t *testing.T) {
	t.Parallel()
	f := start(t, fabrictest.SQLite)
	p := ulid.Make().String()
	sum := canonical.SHA256Hex([]byte(`{"a":1}`))
	svc := f.Token(t, "t1", auth.RoleService)
	for _, c := range []struct {
		name  string
		token string
		req   *auditorv1.AppendEntryRequest
		want  codes.Code
	}{
		{"hash only", svc, &auditorv1.AppendEntryRequest{ProposalId: p, Event: "proposal.scored", PayloadSha256: sum}, codes.OK},
		{"a proposer cannot append", f.Token(t, "t1", auth.RoleProposer), &auditorv1.AppendEntryRequest{ProposalId: p, Event: "proposal.submitted", PayloadSha256: sum}, codes.PermissionDenied},
		{"auditor cannot append", f.Token(t, "t1", auth.RoleAuditor), &auditorv1.AppendEntryRequest{ProposalId: p, Event: "proposal.scored", PayloadSha256: sum}, codes.PermissionDenied},
		{"no token", "", &auditorv1.AppendEntryRequest{ProposalId: p, Event: "proposal.scored", PayloadSha256: sum}, codes.Unauthenticated},
		{"no payload", svc, &auditorv1.AppendEntryRequest{ProposalId: p, Event: "proposal.scored"}, codes.InvalidArgument},
		{"bad event", svc, &auditorv1.AppendEntryRequest{ProposalId: p, Event: "Scored!", PayloadSha256: sum}, codes.InvalidArgument},
		{"snapshots go through RecordSnapshot", svc, &auditorv1.AppendEntryRequest{ProposalId: p, Event: auditlog.EventSnapshotRecorded, PayloadSha256: sum}, codes.InvalidArgument},
		{"reserved key", svc, &auditorv1.AppendEntryRequest{ProposalId: p, Event: "proposal.scored", PayloadSha256: sum, IdempotencyKey: "snapshot:" + p + ":pre"}, codes.InvalidArgument},
		{"mismatched hash", svc, &auditorv1.AppendEntryRequest{ProposalId: p, Event: "proposal.scored", PayloadSha256: sum, Payload: payload(t, map[string]any{"a": 2.0})}, codes.InvalidArgument},
		{"matching hash", svc, &auditorv1.AppendEntryRequest{ProposalId: p, Event: "proposal.scored", PayloadSha256: sum, Payload: payload(t, map[string]any{"a": 1.0})}, codes.OK},
		{"bad proposal", svc, &auditorv1.AppendEntryRequest{ProposalId: "", Event: "proposal.scored", PayloadSha256: sum}, codes.InvalidArgument},
	} {
		var err error
		if c.token == "" {
			_, err = auditorv1.NewAuditorServiceClient(f.Conn(t, fabric.Auditor)).AppendEntry(context.Background(), c.req)
		} else {
			_, err = appendEvent(t, f, c.token, c.req)
		}
		require.Equal(t, c.want, status.Code(err), "%s: %v", c.name, err)
	}

	// Retries with an idempotency key append once.
	req := &auditorv1.AppendEntryRequest{ProposalId: p, Event: "proposal.enacted", PayloadSha256: sum, IdempotencyKey: "enact-" + p}
	first, err := appendEvent(t, f, svc, req)
	require.NoError(t, err)
	require.True(t, first.GetCreated())
	again, err := appendEvent(t, f, svc, req)
	require.NoError(t, err)
	require.False(t, again.GetCreated())
	require.Equal(t, first.GetEntry().GetIndex(), again.GetEntry().GetIndex())
	require.Len(t, trail(t, f, svc, p).GetEntries(), 3)
}

// A fabric service relaying an event records the principal and trace of the request
// that caused it; any other caller's on_behalf_of is ignored (it cannot pose as someone
// else); malformed origin fields are 400.
func TestAppendEntryOnBehalfOf(t *testing.T) {
	t.Parallel()
	f := start(t, fabrictest.SQLite)
	p := ulid.Make().String()
	sum := canonical.SHA256Hex([]byte(`{"a":1}`))
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	relayed, err := appendEvent(t, f, f.Token(t, "t1", auth.RoleService), &auditorv1.AppendEntryRequest{ProposalId: p,
		Event: "proposal.scored", PayloadSha256: sum, OnBehalfOf: "agent:planner", OriginTraceId: trace})
	require.NoError(t, err)
	require.Equal(t, "agent:planner", relayed.GetEntry().GetActor())
	require.Equal(t, trace, relayed.GetEntry().GetTraceId())

	// A tenant admin cannot pose as a service, nor append at all (issue 9).
	_, err = appendEvent(t, f, f.Token(t, "t1", auth.RoleAdmin), &auditorv1.AppendEntryRequest{ProposalId: p,
		Event: "proposal.submitted", PayloadSha256: sum, OnBehalfOf: "agent:planner", OriginTraceId: trace})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	_, err = appendEvent(t, f, f.Token(t, "t1", auth.RoleService), &auditorv1.AppendEntryRequest{ProposalId: p,
		Event: "proposal.scored", PayloadSha256: sum, OnBehalfOf: "x", OriginTraceId: "not-hex"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = appendEvent(t, f, f.Token(t, "t1", auth.RoleService), &auditorv1.AppendEntryRequest{ProposalId: p,
		Event: "proposal.scored", PayloadSha256: sum, OnBehalfOf: "two\nlines"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

// AppendEntries appends in order, in one call; one invalid entry refuses them all; only
// services may call it.
func TestAppendEntries(t *testing.T) {
	t.Parallel()
	f := start(t, fabrictest.SQLite)
	p := ulid.Make().String()
	sum := canonical.SHA256Hex([]byte(`{"a":1}`))
	svc := f.Token(t, "t1", auth.RoleService)
	c := auditorv1.NewAuditorServiceClient(f.Conn(t, fabric.Auditor))
	call := func(tok string, entries ...*auditorv1.AppendEntryRequest) (*auditorv1.AppendEntriesResponse, error) {
		return c.AppendEntries(fabrictest.WithToken(context.Background(), tok), &auditorv1.AppendEntriesRequest{Entries: entries})
	}
	ev := func(name, key string) *auditorv1.AppendEntryRequest {
		return &auditorv1.AppendEntryRequest{ProposalId: p, Event: name, PayloadSha256: sum, IdempotencyKey: key, OnBehalfOf: "user:bob"}
	}
	_, err := call(svc, ev("proposal.submitted", "k1"), ev("snapshot.recorded", "k2"))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "an invalid entry refuses the call")
	require.Contains(t, status.Convert(err).Message(), "entries[1]")
	_, err = call(svc)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = call(f.Token(t, "t1", auth.RoleProposer), ev("proposal.submitted", "k1"))
	require.Equal(t, codes.PermissionDenied, status.Code(err))

	resp, err := call(svc, ev("proposal.submitted", "k1"), ev("proposal.negotiating", "k2"), ev("proposal.agreed", "k3"))
	require.NoError(t, err)
	require.Len(t, resp.GetResults(), 3)
	for i, r := range resp.GetResults() {
		require.True(t, r.GetCreated())
		require.EqualValues(t, i, r.GetEntry().GetIndex(), "in the request's order")
		require.Equal(t, "user:bob", r.GetEntry().GetActor())
	}
	again, err := call(svc, ev("proposal.submitted", "k1"), ev("proposal.scored", "k4"))
	require.NoError(t, err)
	require.False(t, again.GetResults()[0].GetCreated(), "idempotent per key")
	require.True(t, again.GetResults()[1].GetCreated())
	require.Len(t, trail(t, f, svc, p).GetEntries(), 4)
}

// Nothing in the API can change or remove an entry: the service has exactly
// these methods, each of which only reads or appends.
func TestAPIOnlyReadsAndAppends(t *testing.T) {
	t.Parallel()
	var names []string
	for _, m := range auditorv1.AuditorService_ServiceDesc.Methods {
		names = append(names, m.MethodName)
	}
	// ExportDecision only reads: the entries and checkpoint it returns are the trail's.
	// GetCheckpoint reads (it may sign a checkpoint of entries already appended).
	require.ElementsMatch(t, []string{"GetAuditTrail", "GetCheckpoint", "RecordSnapshot", "AppendEntry", "AppendEntries", "PlanRollback", "ExportDecision"}, names)
	require.Empty(t, auditorv1.AuditorService_ServiceDesc.Streams)
}

// TestServiceCannotExportADecision: a whole decision export leaves the fabric, so it is
// for the tenant's auditors and admins alone. The fabric's service identity (which any
// compromised fabric process holds) is refused, over REST and gRPC, before the handler
// runs; it reads what it needs through GetAuditTrail and the coordinator's records.
func TestServiceCannotExportADecision(t *testing.T) {
	t.Parallel()
	f := start(t, fabrictest.SQLite)
	p := ulid.Make().String()
	svc := f.Token(t, "t1", auth.RoleService)
	r := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p+"/bundle", svc, "")
	require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
	c := auditorv1.NewAuditorServiceClient(f.Conn(t, fabric.Auditor))
	_, err := c.ExportDecision(fabrictest.WithToken(context.Background(), svc), &auditorv1.ExportDecisionRequest{ProposalId: p})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	for _, role := range []string{auth.RoleAuditor, auth.RoleAdmin} {
		r := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p+"/bundle", f.Token(t, "t1", role), "")
		require.NotEqual(t, http.StatusForbidden, r.Status, "%s may export: %s", role, r.Body)
	}
	// The service identity still reads the trail it verifies replays with.
	_, err = c.GetAuditTrail(fabrictest.WithToken(context.Background(), svc), &auditorv1.GetAuditTrailRequest{ProposalId: p})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
}
