package precheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File names written by WriteFiles, relative to the reports directory.
const (
	ReportFileName = "I.4_precheck.json"
	LogFileName    = "logs/I.4_precheck.log"
)

// Err returns nil unless the decision is BLOCK; then its message lists what
// to fix.
func (r Report) Err() error {
	if r.Decision != Block {
		return nil
	}
	if len(r.Reasons) == 0 {
		return errors.New("precheck BLOCK")
	}
	return fmt.Errorf("precheck BLOCK: %s", strings.Join(r.Reasons, "; "))
}

// WriteFiles writes reportsDir/I.4_precheck.json (indented JSON) and
// reportsDir/logs/I.4_precheck.log (one line per check, then one line with the
// decision), creating the directories. Both files are replaced atomically, so
// a reader never sees a half-written report.
func (r Report) WriteFiles(reportsDir string) error {
	if reportsDir == "" {
		reportsDir = "."
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false) // keep "<REDACTED>" greppable
	enc.SetIndent("", "  ")
	if err := enc.Encode(r.normalized()); err != nil {
		return fmt.Errorf("precheck: encode report: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(reportsDir, ReportFileName), js.Bytes()); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(reportsDir, filepath.FromSlash(LogFileName)), []byte(r.LogLines()))
}

// normalized returns r with nil slices replaced by empty ones so that the
// JSON always has arrays, never null.
func (r Report) normalized() Report {
	if r.Reasons == nil {
		r.Reasons = []string{}
	}
	if r.Missing == nil {
		r.Missing = []string{}
	}
	if r.SimulatedProviders == nil {
		r.SimulatedProviders = []string{}
	}
	if r.Checks == nil {
		r.Checks = []Check{}
	}
	return r
}

// LogLines renders the log file content: one logfmt-style line per check and
// a final decision line.
func (r Report) LogLines() string {
	ts := r.GeneratedAt.UTC().Format(time.RFC3339)
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%s phase=I.4 check=%s env=%s critical=%t status=%s latency_ms=%d",
			ts, c.Name, c.EnvVar, c.Critical, c.Status, c.LatencyMS)
		if c.Target != "" {
			fmt.Fprintf(&b, " target=%s", strconv.Quote(c.Target))
		}
		fmt.Fprintf(&b, " detail=%s\n", strconv.Quote(c.Detail))
	}
	fmt.Fprintf(&b, "%s phase=I.4 decision=%s simulation_mode=%t decision_timeout_ms=%d missing=%s simulated_providers=%s reasons=%s\n",
		ts, r.Decision, r.SimulationMode, r.DecisionTimeoutMS,
		strconv.Quote(strings.Join(r.Missing, ",")),
		strconv.Quote(strings.Join(r.SimulatedProviders, ",")),
		strconv.Quote(strings.Join(r.Reasons, "; ")))
	return b.String()
}

// Summary renders a short human readable summary for a terminal.
func (r Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "I.4 compliance precheck: %s (simulation_mode=%t, decision timeout %d ms)\n",
		r.Decision, r.SimulationMode, r.DecisionTimeoutMS)
	for _, c := range r.Checks {
		crit := "optional"
		switch {
		case c.Critical:
			crit = "critical"
		case c.Name == CheckSimulationMode || c.Name == CheckDecisionTimeout:
			crit = "config"
		}
		fmt.Fprintf(&b, "  %-11s %-16s %-28s %-8s %s\n", c.Status, c.Name, c.EnvVar, crit, c.Detail)
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "missing: %s\n", strings.Join(r.Missing, ", "))
	}
	if len(r.SimulatedProviders) > 0 {
		fmt.Fprintf(&b, "simulated providers: %s\n", strings.Join(r.SimulatedProviders, ", "))
	}
	if len(r.Reasons) > 0 {
		if r.Decision == Block {
			b.WriteString("to fix:\n")
		} else {
			b.WriteString("reasons:\n")
		}
		for _, reason := range r.Reasons {
			fmt.Fprintf(&b, "  - %s\n", reason)
		}
	}
	return b.String()
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("precheck: create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("precheck: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if tmp != "" {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("precheck: write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		_ = f.Close()
		return fmt.Errorf("precheck: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("precheck: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("precheck: write %s: %w", path, err)
	}
	tmp = ""
	return nil
}
