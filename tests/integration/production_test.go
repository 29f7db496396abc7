package integration

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// production returns a Configure hook that makes the fabric start with
// SIMULATION_MODE=false, and the cosign key it signs with. The precheck contacts
// every dependency, so each gets a stand-in on loopback that answers its health
// check: one HTTP server for Vault, the global registry, Prometheus, Neural Fabric
// and the quantum provider (their API calls fail, which the scorer tolerates), a TCP
// listener for Kafka and a PING/+PONG server for Redis. What production needs from
// the operator is provisioned as an operator would: the cosign key (COSIGN_KEY_PATH,
// COSIGN_PASSWORD), the token verification key (auth.public_key_file), the audit
// checkpoint keys and the region key registry (region_keys_dir).
func production(t *testing.T, regionsFile string) (func(*config.Config), signing.Signer) {
	t.Helper()
	infra := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(infra.Close)
	redis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { redis.Close() })
	go func() {
		for {
			c, err := redis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
					_, _ = c.Write([]byte("+PONG\r\n"))
				}
			}()
		}
	}()

	const password = "production-test-password"
	t.Setenv("COSIGN_PASSWORD", password)
	keyDir := t.TempDir()
	signer, err := signing.GenerateCosignKey(keyDir, []byte(password))
	require.NoError(t, err)

	return func(c *config.Config) {
		c.SimulationMode = "false"
		c.RegionsFile = regionsFile
		i := &c.Integrations
		i.VaultAddr, i.GlobalRegistryURL, i.PromURL, i.NeuralFabricURL, i.QuantumProvider = infra.URL, infra.URL, infra.URL, infra.URL, infra.URL
		i.KafkaURL = config.Secret(strings.TrimPrefix(infra.URL, "http://"))
		i.RedisURL = config.Secret("redis://" + redis.Addr().String())
		i.FederationToken = "federation-test-token"
		i.CosignKeyPath = filepath.Join(keyDir, signing.CosignKeyFile)

		// The harness mints tokens with the development key; production verifies them
		// with its public key, as it would the identity provider's.
		dev, err := auth.LoadOrCreateDevKey(c.DataDir)
		require.NoError(t, err)
		der, err := x509.MarshalPKIXPublicKey(dev.Public())
		require.NoError(t, err)
		c.Auth.PublicKeyFile = filepath.Join(keyDir, "idp.pub")
		require.NoError(t, os.WriteFile(c.Auth.PublicKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))

		// The fabric's own service key, with which its services call each other (the
		// coordinator's audit appends are refused to anyone else).
		_, svc, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		svcDER, err := x509.MarshalPKCS8PrivateKey(svc)
		require.NoError(t, err)
		c.Auth.ServiceKeyFile = filepath.Join(keyDir, "service.pem")
		require.NoError(t, os.WriteFile(c.Auth.ServiceKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: svcDER}), 0o600))

		// Production never creates the audit checkpoint keys: provision them.
		k, err := auditlog.GenerateKeys()
		require.NoError(t, err)
		require.NoError(t, k.WriteFiles(filepath.Join(c.DataDir, "keys")))

		// Production never creates the key TOTP secrets are sealed with: provision it
		// (head -c 32 /dev/urandom > mfa.key).
		mfaKey := make([]byte, 32)
		_, err = rand.Read(mfaKey)
		require.NoError(t, err)
		c.HIL.MFAKeyFile = filepath.Join(keyDir, "mfa.key")
		require.NoError(t, os.WriteFile(c.HIL.MFAKeyFile, mfaKey, 0o600))

		// The region key registry: the (simulated) regions' public keys, as
		// `fabric region-keys export` writes them.
		reg, err := app.RegionRegistry(*c)
		require.NoError(t, err)
		c.RegionKeysDir = filepath.Join(keyDir, "region-keys")
		require.NoError(t, reg.WriteDir(c.RegionKeysDir))
	}, signer
}

// TestProductionRefusesEnactmentWithoutValidConsensusBundle runs the fabric with
// SIMULATION_MODE=false: a proposal whose quorum certificate carries a forged region
// signature, whose bundle was re-signed around a forged vote, or which has no bundle is
// refused with 409 naming what failed, and neither the proposal nor the world changes;
// a genuine one is enacted.
func TestProductionRefusesEnactmentWithoutValidConsensusBundle(t *testing.T) {
	// eu-west answers slowly, so a submission returns while its negotiation runs and
	// the test can forge a stored vote before the coordinator reads the outcome.
	regions := filepath.Join(t.TempDir(), "regions.yaml")
	require.NoError(t, os.WriteFile(regions, []byte("regions:\n  - {name: eu-west, latency: 300ms}\n  - {name: us-east}\n"), 0o600))
	configure, signer := production(t, regions)
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.Postgres, Configure: configure})

	h := f.Do(t, http.MethodGet, fabric.Coordinator, "/health", "", "")
	require.Equal(t, http.StatusOK, h.Status)
	require.Contains(t, string(h.Body), `"simulation_mode":false`, "the fabric runs in production: %s", h.Body)

	ctx := context.Background()
	dsn := f.Cfg.Integrations.PostgresDSN.Reveal()
	st, err := store.Open(ctx, store.Config{PostgresDSN: dsn})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}

	submit := func(t *testing.T, target string) proposal {
		t.Helper()
		m := &typesv1.Manifest{Action: "scale", Target: target, Regions: []string{"eu-west"}, Impact: "low", TenantId: "t1"}
		var err error
		m.Parameters, err = structpb.NewStruct(map[string]any{"replicas_delta": 1})
		require.NoError(t, err)
		unsigned := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", c.token, `{"tenant_id":"t1","manifest":`+manifestJSON(t, m)+`}`)
		require.Equal(t, http.StatusForbidden, unsigned.Status, "P2: production refuses unsigned manifests")
		r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", c.token,
			`{"tenant_id":"t1","manifest":`+manifestJSON(t, m)+`,"signature":`+sign(t, signer, m)+`}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var out struct{ Proposal proposal }
		require.NoError(t, json.Unmarshal(r.Body, &out))
		return out.Proposal
	}
	// record reads and rewrites a stored decision record (what an attacker with
	// database access, or a bug, could do).
	record := func(t *testing.T, id string) (*store.Proposal, *coordinatorv1.Proposal) {
		t.Helper()
		p, err := st.Proposals().Get(ctx, "t1", id)
		require.NoError(t, err)
		d := &coordinatorv1.Proposal{}
		require.NoError(t, protojson.Unmarshal(p.Decision, d))
		return p, d
	}
	rewrite := func(t *testing.T, p *store.Proposal, d *coordinatorv1.Proposal) {
		t.Helper()
		raw, err := canonical.Proto(d)
		require.NoError(t, err)
		_, err = st.Proposals().Advance(ctx, p.TenantID, p.ID, p.Status, p.Version,
			store.ProposalChange{Status: p.Status, DryRun: p.DryRun, Decision: raw, PostStateSHA256: p.PostStateSHA256})
		require.NoError(t, err)
	}
	// setBundle overwrites a proposal's stored consensus bundle ("" removes it).
	setBundle := func(t *testing.T, id string, raw []byte) {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)
		tag, err := conn.Exec(ctx, `UPDATE proposals SET consensus_bundle = $1 WHERE tenant_id = 't1' AND id = $2`, string(raw), id)
		require.NoError(t, err)
		require.EqualValues(t, 1, tag.RowsAffected())
	}
	// refused enacts (and dry-runs) a proposal, expects 409 naming want, and checks
	// that neither the proposal nor the world changed.
	refused := func(t *testing.T, id string, want ...string) {
		t.Helper()
		before, _ := record(t, id)
		w := world.NewSimulated(st)
		pre, err := w.Read(ctx, "t1", targetOf(t, before), []string{"eu-west"})
		require.NoError(t, err)
		require.Equal(t, before.PreStateSHA256, pre.SHA256)
		for _, body := range []string{`{}`, `{"dry_run":true}`} {
			r := c.post(t, "/proposals/"+id+"/enact", body)
			require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
			for _, s := range want {
				require.Contains(t, string(r.Body), s)
			}
		}
		after, _ := record(t, id)
		require.Equal(t, before.Status, after.Status, "the proposal did not move")
		require.Equal(t, before.Version, after.Version, "nothing was written")
		require.Empty(t, after.PostStateSHA256)
		now, err := w.Read(ctx, "t1", targetOf(t, before), []string{"eu-west"})
		require.NoError(t, err)
		require.Equal(t, pre.SHA256, now.SHA256, "the world is unchanged")
	}

	t.Run("forged region signature in the negotiation", func(t *testing.T) {
		// The lifecycle engine records an outcome the moment the negotiation ends, so
		// the forgery happens as the vote is stored: a trigger (an attacker with
		// database access) replaces eu-west's signature with one by another key.
		m := &typesv1.Manifest{Action: "scale", Target: "serviceF", Regions: []string{"eu-west"}, Impact: "low", TenantId: "t1"}
		m.Parameters, err = structpb.NewStruct(map[string]any{"replicas_delta": 1})
		require.NoError(t, err)
		raw, err := canonical.Proto(m)
		require.NoError(t, err)
		_, forger, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		payload, err := quorum.VotePayload(canonical.SHA256Hex(raw), 1, "eu-west", quorum.VerdictAccept)
		require.NoError(t, err)
		forged := base64.StdEncoding.EncodeToString(ed25519.Sign(forger, payload))
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE FUNCTION forge_eu_west() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN NEW.signature := '`+forged+`'; RETURN NEW; END $$;
			CREATE TRIGGER forge_eu_west BEFORE INSERT OR UPDATE ON negotiation_votes
			FOR EACH ROW WHEN (NEW.region = 'eu-west') EXECUTE FUNCTION forge_eu_west();`)
		require.NoError(t, err)
		p := submit(t, "serviceF")
		require.Equal(t, "PROPOSAL_STATUS_NEGOTIATING", p.Status)
		t.Cleanup(func() {
			_, _ = conn.Exec(context.Background(), `DROP TRIGGER IF EXISTS forge_eu_west ON negotiation_votes; DROP FUNCTION IF EXISTS forge_eu_west()`)
		})

		// The coordinator records the agreement but refuses to sign a bundle for it...
		p = c.await(t, p.ID, "PROPOSAL_STATUS_SCORED")
		sp, d := record(t, p.ID)
		require.Empty(t, sp.ConsensusBundle)
		require.Equal(t, "null", string(p.ConsensusBundle), "no bundle in the API either")
		require.Contains(t, d.GetConsensusError(), `region "eu-west"`)
		require.Contains(t, d.GetConsensusError(), "signature")
		// ... and enactment is refused, saying why.
		refused(t, p.ID, "no consensus bundle (P2)", "quorum certificate", `region \"eu-west\"`)
		_, err = conn.Exec(ctx, `DROP TRIGGER forge_eu_west ON negotiation_votes; DROP FUNCTION forge_eu_west()`)
		require.NoError(t, err)
	})

	t.Run("bundle re-signed around a forged vote", func(t *testing.T) {
		// Even the coordinator's own key cannot make a forged vote count: the
		// certificate is checked against the region key registry.
		p := c.await(t, submit(t, "serviceG").ID, "PROPOSAL_STATUS_SCORED")
		require.Contains(t, string(p.ConsensusBundle), `"quorum_certificate"`, "the API shows the stored bundle")
		sp, _ := record(t, p.ID)
		sb, err := bundle.DecodeSigned(sp.ConsensusBundle)
		require.NoError(t, err)
		cb, err := bundle.Parse(sb.Payload)
		require.NoError(t, err)
		_, forger, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		vote, err := quorum.VotePayload(cb.ManifestSHA256, cb.QuorumCertificate.Round, "eu-west", quorum.VerdictAccept)
		require.NoError(t, err)
		cb.QuorumCertificate.Votes[0].Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(forger, vote))
		resealed, err := bundle.Seal(cb, signer)
		require.NoError(t, err)
		raw, err := resealed.Encode()
		require.NoError(t, err)
		setBundle(t, p.ID, raw)
		refused(t, p.ID, "consensus bundle does not verify (P2)", "quorum certificate", `region \"eu-west\"`)
	})

	t.Run("bundle changed after signing", func(t *testing.T) {
		p := c.await(t, submit(t, "serviceH").ID, "PROPOSAL_STATUS_SCORED")
		sp, _ := record(t, p.ID)
		var stored map[string]any
		require.NoError(t, json.Unmarshal(sp.ConsensusBundle, &stored))
		agreed := stored["bundle"].(map[string]any)["agreed_manifest"].(map[string]any)
		agreed["target"] = "serviceI"
		raw, err := json.Marshal(stored)
		require.NoError(t, err)
		setBundle(t, p.ID, raw)
		refused(t, p.ID, "consensus bundle does not verify (P2)", "sha256")
	})

	t.Run("bundle recorded inside the decision record (before migration 00007)", func(t *testing.T) {
		// Proposals agreed before bundles had their own column keep them in the
		// decision record; they are verified the same way.
		p := c.await(t, submit(t, "serviceL").ID, "PROPOSAL_STATUS_SCORED")
		sp, d := record(t, p.ID)
		sb, err := bundle.DecodeSigned(sp.ConsensusBundle)
		require.NoError(t, err)
		cb, err := bundle.Parse(sb.Payload)
		require.NoError(t, err)
		cb.AgreedManifest = json.RawMessage(strings.Replace(string(cb.AgreedManifest), "serviceL", "serviceM", 1))
		d.ConsensusBundle, err = bundle.Sign(cb, signer) // re-signed, but not what the regions agreed to
		require.NoError(t, err)
		setBundle(t, p.ID, nil)
		rewrite(t, sp, d)
		refused(t, p.ID, "consensus bundle does not verify (P2)", "agreed manifest")
	})

	t.Run("missing bundle", func(t *testing.T) {
		p := c.await(t, submit(t, "serviceJ").ID, "PROPOSAL_STATUS_SCORED")
		require.Contains(t, string(p.ConsensusBundle), `"quorum_certificate"`)
		setBundle(t, p.ID, nil)
		refused(t, p.ID, "no consensus bundle (P2)")
	})

	t.Run("genuine bundle", func(t *testing.T) {
		p := c.await(t, submit(t, "serviceK").ID, "PROPOSAL_STATUS_SCORED")
		r := c.post(t, "/proposals/"+p.ID+"/enact", `{}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "PROPOSAL_STATUS_ENACTED")

		// The audit trail is complete outside simulation too: the coordinator appends
		// with the service key, on behalf of the caller.
		r = f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p.ID, f.Token(t, "t1", auth.RoleAuditor), "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var trail struct {
			Entries []struct{ Event, Actor string } `json:"entries"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &trail))
		var events []string
		for _, e := range trail.Entries {
			events = append(events, e.Event)
			require.Equal(t, "test-user", e.Actor, e.Event)
		}
		require.Contains(t, events, "proposal.submitted")
		require.Contains(t, events, "proposal.agreed")
		require.Equal(t, "proposal.enacted", events[len(events)-2], "then the post snapshot: %v", events)
	})
}

// targetOf is a stored proposal's manifest target.
func targetOf(t *testing.T, p *store.Proposal) string {
	t.Helper()
	m := &typesv1.Manifest{}
	require.NoError(t, protojson.Unmarshal(p.Manifest, m))
	return m.GetTarget()
}
