package app

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/witness"
)

// auditWitness is the witness the auditor sends its checkpoints to: the one at
// audit.witness_url, an in-process one with audit.simulated_witness (simulation
// only: its key and state in <data_dir>/witness), or none (nil).
func (a *App) auditWitness(keyDir string) (auditlog.Cosigner, error) {
	cfg := a.Cfg.Audit
	switch {
	case cfg.WitnessURL != "":
		vkey, err := os.ReadFile(cfg.WitnessKeyFile)
		if err != nil {
			return nil, err
		}
		return witness.NewClient(cfg.WitnessURL, string(vkey))
	case !cfg.SimulatedWitness:
		return nil, nil
	case !a.Simulation:
		return nil, errors.New("audit.simulated_witness is for simulation only: run `fabric witness serve` and set audit.witness_url")
	}
	// The log's keys are created on first use in simulation; the witness needs the
	// public one to check the checkpoints it cosigns.
	keys, err := auditlog.LoadOrCreateKeys(keyDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(a.Cfg.DataDir, "witness")
	if _, err := os.Stat(filepath.Join(dir, witness.KeyFile)); errors.Is(err, fs.ErrNotExist) {
		if _, err := witness.GenerateKey(dir, "simulated-witness.decision-fabric"); err != nil {
			return nil, err
		}
	}
	w, err := witness.Open(dir, keys.Verifier().NoteVerifierKey())
	if err != nil {
		return nil, err
	}
	return witness.Local(w), nil
}
