package integration

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	composerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/composer/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/consent"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/signing/cosigntest"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// The attacks of issue #9's "smaller holes", each against the all-in-one fabric on
// both stores.

// eachStore runs scenario once per store, in parallel.
func storesOnly(t *testing.T, scenario func(t *testing.T, st fabrictest.Store)) {
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
	storesOnly(t, func(t *testing.T, st fabrictest.Store) {
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
	storesOnly(t, func(t *testing.T, st fabrictest.Store) {
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

// TestIdempotencyKeyReusedWithAnotherBody: the IETF httpapi idempotency-key draft
// answers 422 when a key is reused with a different payload; the same payload still
// replays the first answer.
func TestIdempotencyKeyReusedWithAnotherBody(t *testing.T) {
	storesOnly(t, func(t *testing.T, st fabrictest.Store) {
		f := allInOne(t, st, fabrictest.Options{})
		tok := f.Token(t, "t1", auth.RoleProposer)
		post := func(body, key string) fabrictest.Response {
			return f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok, body, "Idempotency-Key: "+key)
		}
		first := `{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX","parameters":{"replicas":3}}}`
		r := post(first, "deploy-42")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		id := decode(t, r).Proposal.ID

		// The same request, spelled differently (member order, spaces): a replay.
		again := `{"manifest":{"parameters":{"replicas":3},"target":"serviceX","action":"scale"}, "tenant_id":"t1"}`
		r = post(again, "deploy-42")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Equal(t, id, decode(t, r).Proposal.ID)
		require.False(t, decode(t, r).Created)

		// Another body under the same key: 422, and nothing new is stored.
		other := `{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX","parameters":{"replicas":4}}}`
		r = post(other, "deploy-42")
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "Idempotency-Key")
		require.NotContains(t, string(r.Body), id, "the first request's answer is not disclosed")

		// gRPC: FAILED_PRECONDITION with the reason in an ErrorInfo.
		req := &coordinatorv1.SubmitProposalRequest{}
		require.NoError(t, protojson.Unmarshal([]byte(other), req))
		ctx := metadata.AppendToOutgoingContext(fabrictest.WithToken(context.Background(), tok), "idempotency-key", "deploy-42")
		_, err := coordinatorv1.NewCoordinatorServiceClient(f.Conn(t, fabric.Coordinator)).SubmitProposal(ctx, req)
		require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
		var reasons []string
		for _, d := range status.Convert(err).Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok {
				reasons = append(reasons, info.GetReason())
			}
		}
		require.Equal(t, []string{server.ReasonIdempotencyKeyReused}, reasons)

		list := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals", tok, "")
		var listed struct {
			Proposals []json.RawMessage `json:"proposals"`
		}
		require.NoError(t, json.Unmarshal(list.Body, &listed), string(list.Body))
		// (Counting "manifest_sha256" in the body also counts the consensus bundle's,
		// once the regions have agreed.)
		require.Len(t, listed.Proposals, 1, "one proposal stored")
	})
}

// rawDB opens the fabric's database directly, read-only for SQLite.
func rawDB(t *testing.T, f *fabrictest.Fabric, st fabrictest.Store) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if st == fabrictest.Postgres {
		db, err = sql.Open("pgx", string(f.Cfg.Integrations.PostgresDSN))
	} else {
		file := filepath.Join(f.Cfg.DataDir, store.SQLiteFileName)
		db, err = sql.Open("sqlite", "file:"+file+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	}
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestIdempotencyKeyAndSubjectAreRedacted: an e-mail in the Idempotency-Key or in the
// token's subject is stored as the audit log records it, redacted, and the
// Idempotency-Key still replays.
func TestIdempotencyKeyAndSubjectAreRedacted(t *testing.T) {
	storesOnly(t, func(t *testing.T, st fabrictest.Store) {
		f := allInOne(t, st, fabrictest.Options{})
		tok := f.TokenFor(t, "alice@example.com", "t1", auth.RoleProposer)
		body := `{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX"}}`
		post := func(key string) fabrictest.Response {
			return f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok, body, "Idempotency-Key: "+key)
		}
		r := post("bob@example.com")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		p := decode(t, r).Proposal
		require.NotContains(t, string(r.Body), "alice@example.com")

		r = post("bob@example.com")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Equal(t, p.ID, decode(t, r).Proposal.ID, "the redacted key still replays")
		require.False(t, decode(t, r).Created)

		r = post("carol@example.com")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.NotEqual(t, p.ID, decode(t, r).Proposal.ID, "keys that redact alike stay distinct")

		db := rawDB(t, f, st)
		for _, q := range []string{
			`SELECT idempotency_key || ' ' || created_by FROM proposals`,
			`SELECT actor FROM audit_outbox`,
			`SELECT actor || ' ' || idempotency_key FROM audit_entries`,
		} {
			rows, err := db.Query(q)
			require.NoError(t, err, q)
			n := 0
			for rows.Next() {
				var v string
				require.NoError(t, rows.Scan(&v))
				require.NotContains(t, v, "@example.com", q)
				n++
			}
			require.NoError(t, rows.Err())
			rows.Close()
			if strings.Contains(q, "proposals") {
				require.Equal(t, 2, n)
			}
		}
	})
}

// TestConsentIsVerifiedAndScanned: a consent whose own fields carry an e-mail and a
// phone number, unsigned or signed, is refused and stored nowhere; an unsigned
// consent never exempts personal data, at the coordinator or at the composer.
func TestConsentIsVerifiedAndScanned(t *testing.T) {
	storesOnly(t, func(t *testing.T, st fabrictest.Store) {
		f := allInOne(t, st, fabrictest.Options{})
		tok := f.Token(t, "t1", auth.RoleProposer)
		key, err := signing.LoadOrCreateSimulationKey(f.Cfg.DataDir)
		require.NoError(t, err)
		submit := func(m *typesv1.Manifest) fabrictest.Response {
			return f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok, `{"tenant_id":"t1","manifest":`+manifestJSON(t, m)+`}`)
		}
		const email, phone = "alice@example.com", "+44 20 7946 0958"

		// The attack: no PII anywhere but in an unsigned consent.
		leaky := &typesv1.Manifest{Action: "scale", Target: "serviceX",
			Consent: &typesv1.Consent{GrantedBy: email, Scopes: []string{phone}}}
		r := submit(leaky)
		require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
		require.NotContains(t, string(r.Body), "alice")
		require.NotContains(t, string(r.Body), "7946")

		// Signed by the fabric's own key, the same contents are refused all the same.
		require.NoError(t, consent.Sign(key, leaky.Consent))
		r = submit(leaky)
		require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))

		// A well-formed consent that is unsigned, or signed by a stranger, is refused
		// even with no personal data to exempt: consent is verified wherever it appears.
		unsigned := &typesv1.Manifest{Action: "scale", Target: "serviceX",
			Consent: &typesv1.Consent{GrantedBy: "policy-42", Scopes: []string{"email"}}}
		r = submit(unsigned)
		require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "not signed")
		stranger, err := signing.GenerateEd25519()
		require.NoError(t, err)
		require.NoError(t, consent.Sign(stranger, unsigned.Consent))
		r = submit(unsigned)
		require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "does not verify")

		list := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals", tok, "")
		require.Equal(t, http.StatusOK, list.Status)
		require.NotContains(t, string(list.Body), "manifest_sha256", "nothing was stored")

		// The composer honours only a verified consent: unsigned, the e-mail in the
		// context is redacted and the consent is not copied into the signed manifest.
		compose := func(c *typesv1.Consent) map[string]any {
			body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(&composerv1.ComposeRequest{
				TenantId: "t1", Context: "reduce cost, owner ops.lead@example.com", Target: "serviceX", Consent: c})
			require.NoError(t, err)
			r := f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok, string(body))
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			var out map[string]any
			require.NoError(t, json.Unmarshal(r.Body, &out))
			return out
		}
		c := &typesv1.Consent{GrantedBy: "policy-42", Scopes: []string{"email"}}
		out := compose(c)
		require.NotContains(t, fmt.Sprint(out), "ops.lead@example.com", "an unsigned consent exempts nothing")
		require.Nil(t, out["manifest"].(map[string]any)["consent"])
		require.NoError(t, consent.Sign(key, c))
		out = compose(c)
		require.Contains(t, fmt.Sprint(out), "ops.lead@example.com", "a signed consent keeps what it covers")
		require.NotNil(t, out["manifest"].(map[string]any)["consent"])
	})
}

// TestReturnedManifestIsTheSignedOne: the manifest a REST response shows is exactly
// the one signed, so the RFC 8785 canonical form of it as returned hashes to the
// manifest_sha256 beside it, and the real cosign verify-blob accepts those bytes with
// the returned signature and public key; for the composer's answer, the submission's,
// and a later GET.
func TestReturnedManifestIsTheSignedOne(t *testing.T) {
	bin := cosigntest.Binary(t)
	storesOnly(t, func(t *testing.T, st fabrictest.Store) {
		f := allInOne(t, st, fabrictest.Options{})
		tok := f.Token(t, "t1", auth.RoleProposer)

		// check canonicalises the manifest member of a response object as returned and
		// verifies it against the hash and signature beside it.
		check := func(where string, manifest json.RawMessage, sha string, sig map[string]any) {
			t.Helper()
			payload, err := canonical.JSON(manifest)
			require.NoError(t, err, where)
			require.Equal(t, sha, canonical.SHA256Hex(payload), "%s: sha256(canonical(returned manifest)) != manifest_sha256\nreturned: %s", where, manifest)
			dir := t.TempDir()
			files := map[string]string{"manifest.json": string(payload), "manifest.sig": sig["signature"].(string), "cosign.pub": sig["public_key"].(string)}
			for name, content := range files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
			}
			out, err := cosignVerifyBlob(t, bin, filepath.Join(dir, "cosign.pub"), filepath.Join(dir, "manifest.sig"), filepath.Join(dir, "manifest.json"))
			require.NoError(t, err, "%s: cosign verify-blob: %s", where, out)
		}

		r := f.Do(t, http.MethodPost, fabric.Composer, "/compose", tok, `{"tenant_id":"t1","context":"reduce cost","target":"serviceX"}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var composed struct {
			Manifest       json.RawMessage `json:"manifest"`
			ManifestSHA256 string          `json:"manifest_sha256"`
			Signature      map[string]any  `json:"signature"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &composed))
		check("compose", composed.Manifest, composed.ManifestSHA256, composed.Signature)

		sig, err := json.Marshal(composed.Signature)
		require.NoError(t, err)
		r = f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok,
			`{"tenant_id":"t1","manifest":`+string(composed.Manifest)+`,"signature":`+string(sig)+`}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		type proposal struct {
			ID                string          `json:"id"`
			Manifest          json.RawMessage `json:"manifest"`
			ManifestSHA256    string          `json:"manifest_sha256"`
			ManifestSignature map[string]any  `json:"manifest_signature"`
		}
		var submitted struct {
			Proposal proposal `json:"proposal"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &submitted))
		require.Equal(t, composed.ManifestSHA256, submitted.Proposal.ManifestSHA256)
		check("submit", submitted.Proposal.Manifest, submitted.Proposal.ManifestSHA256, submitted.Proposal.ManifestSignature)

		r = f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+submitted.Proposal.ID, tok, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var got struct {
			Proposal proposal `json:"proposal"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &got))
		check("get", got.Proposal.Manifest, got.Proposal.ManifestSHA256, got.Proposal.ManifestSignature)

		// Everything else keeps its unpopulated fields: only signed documents are sparse.
		require.Contains(t, string(r.Body), `"post_state_sha256":""`)
	})
}
