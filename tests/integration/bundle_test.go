package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/signing/cosigntest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// fabricCLI runs the `fabric` command line in-process (its Go entry point) and
// returns the exit code and what it printed.
func fabricCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), args, app.All, &out, &errOut)
	t.Logf("fabric %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String() + errOut.String()
}

// cosignVerifyBlob runs `cosign verify-blob --key KEY --signature SIG
// --insecure-ignore-tlog=true PAYLOAD`, offline.
func cosignVerifyBlob(t *testing.T, bin, key, sig, payload string) (string, error) {
	t.Helper()
	stdout, stderr, err := cosigntest.Run(t, bin, t.TempDir(), nil, "verify-blob", "--key", key, "--signature", sig, "--insecure-ignore-tlog=true", payload)
	return stdout + stderr, err
}

// flipFirst changes one byte: the last byte of the first occurrence of needle in path.
func flipFirst(t *testing.T, path, needle string) {
	t.Helper()
	flipAt(t, path, needle, len(needle)-1)
}

// flipAfter changes one byte: the one after the first occurrence of needle in path
// (a hex digit or base64 character becomes the next one).
func flipAfter(t *testing.T, path, needle string) {
	t.Helper()
	flipAt(t, path, needle, len(needle))
}

func flipAt(t *testing.T, path, needle string, off int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	i := bytes.Index(raw, []byte(needle))
	require.GreaterOrEqual(t, i, 0, "%q not in %s", needle, path)
	switch b := raw[i+off]; b {
	case '9':
		raw[i+off] = '0'
	case 'z', 'Z', 'f':
		raw[i+off] = b - 1
	default:
		raw[i+off] = b + 1
	}
	require.NoError(t, os.WriteFile(path, raw, 0o644))
}

// TestDecisionExportVerifiesOffline runs the decision path with a signed manifest,
// exports the decision from the auditor, verifies it with `fabric decision verify`
// and the public keys alone, checks the manifest signature with the real cosign CLI,
// and shows that a one-byte change fails both.
func TestDecisionExportVerifiesOffline(t *testing.T) {
	for _, tc := range []struct {
		topo  fabrictest.Topology
		store fabrictest.Store
	}{{fabrictest.AllInOne, fabrictest.SQLite}, {fabrictest.Split, fabrictest.Postgres}} {
		t.Run(string(tc.topo)+"/"+string(tc.store), func(t *testing.T) {
			t.Parallel()
			f := fabrictest.Start(t, fabrictest.Options{Topology: tc.topo, Store: tc.store})
			c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
			keys := filepath.Join(f.Cfg.DataDir, "keys")
			fabricKey, err := signing.LoadOrCreateSimulationKey(f.Cfg.DataDir)
			require.NoError(t, err)

			// A signed, low-impact manifest through negotiation, scoring and enactment.
			m := &typesv1.Manifest{Action: "scale", Target: "serviceB", Regions: []string{"eu-west"}, Impact: "low", TenantId: "t1"}
			m.Parameters, err = structpb.NewStruct(map[string]any{"replicas_delta": 1})
			require.NoError(t, err)
			r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", c.token,
				`{"tenant_id":"t1","manifest":`+manifestJSON(t, m)+`,"signature":`+sign(t, fabricKey, m)+`}`)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			var sub struct{ Proposal proposal }
			require.NoError(t, json.Unmarshal(r.Body, &sub))
			p := c.await(t, sub.Proposal.ID, "PROPOSAL_STATUS_SCORED")
			got := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID, c.token, "")
			var withBundle struct {
				Proposal struct {
					ConsensusBundle struct {
						SHA256    string         `json:"sha256"`
						Bundle    map[string]any `json:"bundle"`
						Signature struct {
							KeyID string `json:"key_id"`
						} `json:"signature"`
					} `json:"consensus_bundle"`
					ManifestSignature struct {
						KeyID string `json:"key_id"`
					} `json:"manifest_signature"`
				} `json:"proposal"`
			}
			require.NoError(t, json.Unmarshal(got.Body, &withBundle))
			cb := withBundle.Proposal.ConsensusBundle
			require.Len(t, cb.SHA256, 64, "the proposal carries its consensus bundle: %s", got.Body)
			require.Equal(t, fabricKey.KeyID(), cb.Signature.KeyID)
			require.Equal(t, fabricKey.KeyID(), withBundle.Proposal.ManifestSignature.KeyID)
			require.Contains(t, cb.Bundle, "quorum_certificate")
			r = c.post(t, "/proposals/"+p.ID+"/enact", `{}`)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))

			// The export is for auditors and admins of the tenant only.
			require.Equal(t, http.StatusForbidden, f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p.ID+"/bundle", c.token, "").Status)
			require.Equal(t, http.StatusNotFound, f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p.ID+"/bundle",
				f.Token(t, "t2", auth.RoleAuditor), "").Status, "another tenant's decision does not exist")

			dir := t.TempDir()
			export := filepath.Join(dir, "decision.json")
			code, _ := fabricCLI(t, "decision", "export", "-url", f.URL(fabric.Auditor), "-id", p.ID,
				"-token", f.Token(t, "t1", auth.RoleAuditor), "-out", export)
			require.Equal(t, 0, code)

			// The region key registry a verifier is given: the simulated regions' keys.
			cfgFile := filepath.Join(dir, "fabric.yaml")
			require.NoError(t, os.WriteFile(cfgFile, []byte("data_dir: "+f.Cfg.DataDir+"\n"), 0o600))
			regionKeys := filepath.Join(dir, "region-keys")
			code, out := fabricCLI(t, "region-keys", "export", "-config", cfgFile, "-out", regionKeys)
			require.Equal(t, 0, code)
			require.Contains(t, out, "eu-west.pub")

			payload, sig := filepath.Join(dir, "manifest.json"), filepath.Join(dir, "manifest.sig")
			bundlePayload, bundleSig := filepath.Join(dir, "bundle.json"), filepath.Join(dir, "bundle.sig")
			verify := func(file string) (int, string) {
				return fabricCLI(t, "decision", "verify", "-bundle", file,
					"-cosign-key", filepath.Join(keys, signing.CosignPubFile),
					"-audit-key", filepath.Join(keys, auditlog.Ed25519PubFile),
					"-mldsa-key", filepath.Join(keys, auditlog.MLDSAPubFile),
					"-region-keys", regionKeys,
					"-write-manifest-payload", payload, "-write-manifest-signature", sig,
					"-write-bundle-payload", bundlePayload, "-write-bundle-signature", bundleSig)
			}
			code, out = verify(export)
			require.Equal(t, 0, code, out)
			for _, want := range []string{"ok   manifest signature", "ok   consensus bundle signature", "ok   quorum certificate: AGREED",
				"ok   checkpoint", "ok   audit entry", "ok   status: ENACTED", "verified: decision " + p.ID} {
				require.Contains(t, out, want)
			}

			// A one-byte change in the manifest: the offline verifier names it... (The
			// JSON is compacted first, so the changes below find their place whatever
			// whitespace protojson chose; compacting changes no value.)
			tampered := filepath.Join(dir, "tampered.json")
			body, err := os.ReadFile(export)
			require.NoError(t, err)
			var compact bytes.Buffer
			require.NoError(t, json.Compact(&compact, body))
			raw := compact.Bytes()
			require.NoError(t, os.WriteFile(tampered, raw, 0o644))
			flipFirst(t, tampered, `"target":"serviceB`)
			code, out = verify(tampered)
			require.Equal(t, 2, code, out)
			require.Contains(t, out, "FAIL manifest: hashes to")

			// ... and so do one-byte changes in the consensus bundle, an audit entry and
			// the checkpoint.
			for needle, part := range map[string]string{
				`"created_at":"20`:             "FAIL consensus bundle: sha256", // the bundle's own created_at comes first
				`"event":"proposal.negotiatin`: "FAIL audit entry",
				`"root_hash":"`:                "FAIL checkpoint",
			} {
				require.NoError(t, os.WriteFile(tampered, raw, 0o644))
				flipAfter(t, tampered, needle)
				code, out = verify(tampered)
				require.Equal(t, 2, code, out)
				require.Contains(t, out, part)
			}

			t.Run("cosign CLI", func(t *testing.T) {
				bin := cosigntest.Binary(t)
				pub := filepath.Join(keys, signing.CosignPubFile)
				// The genuine export's manifest and bundle verify with the real cosign CLI.
				code, out := verify(export)
				require.Equal(t, 0, code, out)
				_, err := cosignVerifyBlob(t, bin, pub, sig, payload)
				require.NoError(t, err, "cosign verify-blob rejected the manifest signature")
				_, err = cosignVerifyBlob(t, bin, pub, bundleSig, bundlePayload)
				require.NoError(t, err, "cosign verify-blob rejected the consensus bundle signature")

				// One byte changed in the manifest: the verifier refuses it (and writes its
				// payload first), and cosign refuses it too.
				require.NoError(t, os.WriteFile(tampered, raw, 0o644))
				flipFirst(t, tampered, `"target":"serviceB`)
				code, _ = verify(tampered)
				require.Equal(t, 2, code)
				cliOut, err := cosignVerifyBlob(t, bin, pub, sig, payload)
				var ee *exec.ExitError
				require.True(t, errors.As(err, &ee), "cosign verify-blob accepted a manifest with one byte changed: %v", err)
				require.Contains(t, cliOut, "invalid signature")
			})
		})
	}
}
