package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/services/sim-canary/canary"
)

// replayDeps wires the sim-canary's replay: the coordinator, auditor and negotiator
// clients as the fabric's service identity, and the public keys records are verified
// with (trusted cosign keys, the region key registry, the audit log's public keys in
// data_dir/keys, read at each replay: in simulation the auditor creates them on first
// use).
func (a *App) replayDeps() (canary.ReplayDeps, error) {
	coord, err := a.Dial(fabric.Coordinator)
	if err != nil {
		return canary.ReplayDeps{}, err
	}
	aud, err := a.Dial(fabric.Auditor)
	if err != nil {
		return canary.ReplayDeps{}, err
	}
	neg, err := a.Dial(fabric.Negotiator)
	if err != nil {
		return canary.ReplayDeps{}, err
	}
	registry, err := a.regionRegistry()
	if err != nil {
		return canary.ReplayDeps{}, err
	}
	keyDir := a.Cfg.DataDir + "/keys"
	id := identity{a.serviceToken}
	return canary.ReplayDeps{
		Coordinator: coordinatorv1.NewCoordinatorServiceClient(coord),
		Auditor:     auditorv1.NewAuditorServiceClient(aud),
		Negotiator:  negotiatorv1.NewNegotiatorServiceClient(neg),
		AsService:   id.as,
		Keys: func() (bundle.Keys, error) {
			ring, err := a.verifyingKeys()
			if err != nil {
				return bundle.Keys{}, err
			}
			v, err := auditPublicKeys(keyDir)
			if err != nil {
				return bundle.Keys{}, err
			}
			return bundle.Keys{Cosign: ring, Regions: registry.Trusted(), Audit: v, AllowUnsignedManifest: a.Simulation}, nil
		},
	}, nil
}

// auditPublicKeys reads the audit log's public keys from dir.
func auditPublicKeys(dir string) (*auditlog.Verifier, error) {
	vkey, err := os.ReadFile(filepath.Join(dir, auditlog.Ed25519PubFile))
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint keys: %w", err)
	}
	mpub, err := os.ReadFile(filepath.Join(dir, auditlog.MLDSAPubFile))
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint keys: %w", err)
	}
	return auditlog.NewVerifier(strings.TrimSpace(string(vkey)), mpub)
}

// verifyingKeys are the cosign public keys a verifier trusts, without the private key:
// in simulation the simulation key's (created in data_dir on first use, as the
// coordinator does); in production the public key beside COSIGN_KEY_PATH
// (cosign.pub for cosign.key, as `cosign generate-key-pair` writes them), when present,
// and trusted_keys.
func (a *App) verifyingKeys() (*signing.Keyring, error) {
	path := a.Cfg.Integrations.CosignKeyPath
	if a.Simulation || path == "" {
		return a.trustedKeys()
	}
	ring := &signing.Keyring{}
	pub := strings.TrimSuffix(path, filepath.Ext(path)) + ".pub"
	if _, err := os.Stat(pub); err == nil {
		if err := ring.AddFiles(pub); err != nil {
			return nil, err
		}
	}
	if err := ring.AddFiles(a.Cfg.TrustedKeys...); err != nil {
		return nil, fmt.Errorf("trusted_keys: %w", err)
	}
	if ring.Len() == 0 {
		return nil, fmt.Errorf("no cosign public key to verify decisions with: put the fabric's public key at %s or list it in trusted_keys", pub)
	}
	return ring, nil
}
