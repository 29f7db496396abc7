package precheck

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// secretValues must never appear in any output.
var secretValues = []string{"s3cr3t", "tok-abc"}

func requireNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range secretValues {
		require.NotContains(t, text, s, "%s leaks %q", where, s)
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	registryUp := statusServer(t, "", http.StatusOK)
	registryDown := statusServer(t, "", http.StatusInternalServerError)
	closed := closedAddr(t)
	withCreds := func(base string) string {
		return strings.Replace(base, "http://", "http://fabric:s3cr3t@", 1) + "/?token=tok-abc"
	}

	tests := []struct {
		name string
		env  map[string]string
		want Decision
	}{
		{
			name: "everything configured, postgres closed",
			env: map[string]string{
				EnvPostgresDSN:       "postgres://fabric:s3cr3t@" + closed + "/fabric?sslmode=disable",
				EnvVaultAddr:         withCreds("http://" + closed),
				EnvGlobalRegistryURL: withCreds(registryUp.URL),
				EnvFederationToken:   "tok-abc",
				EnvRedisURL:          "redis://:s3cr3t@" + closed + "/0?password=tok-abc",
				EnvKafkaURL:          "kafka://fabric:s3cr3t@" + closed,
				EnvPromURL:           withCreds("http://" + closed),
				EnvNeuralFabricURL:   withCreds("http://" + closed),
				EnvQuantumProvider:   withCreds("http://" + closed),
			},
			want: ProceedSimulation,
		},
		{
			name: "key=value DSN, production requested",
			env: map[string]string{
				EnvPostgresDSN:       "host=127.0.0.1 port=" + strings.Split(closed, ":")[1] + " user=fabric password=s3cr3t dbname=fabric sslmode=disable",
				EnvGlobalRegistryURL: withCreds(registryUp.URL),
				EnvFederationToken:   "tok-abc",
				EnvSimulationMode:    "false",
			},
			want: Block,
		},
		{
			name: "unparseable DSN, registry 5xx",
			env: map[string]string{
				EnvPostgresDSN:       "postgres://fabric:s3cr3t@127.0.0.1:notaport/db",
				EnvGlobalRegistryURL: withCreds(registryDown.URL),
				EnvFederationToken:   "tok-abc",
			},
			want: Block,
		},
		{
			name: "registry unreachable with credentials",
			env: map[string]string{
				EnvGlobalRegistryURL: withCreds("http://" + closed),
				EnvFederationToken:   "tok-abc",
				EnvRedisURL:          "s3cr3t@@:bad",
				EnvVaultAddr:         "not a url s3cr3t",
			},
			want: Block,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var stdout bytes.Buffer
			code := mainWithEnv(context.Background(), []string{"-reports-dir", dir, "-timeout", "2s"}, &stdout, envOf(mapLookup(tc.env)))

			js, err := os.ReadFile(filepath.Join(dir, ReportFileName))
			require.NoError(t, err)
			logData, err := os.ReadFile(filepath.Join(dir, "logs", "I.4_precheck.log"))
			require.NoError(t, err)

			var r Report
			require.NoError(t, json.Unmarshal(js, &r))
			require.Equal(t, tc.want, r.Decision, r.Reasons)
			if tc.want == Block {
				require.Equal(t, ExitBlock, code)
				requireNoSecret(t, "Err()", r.Err().Error())
			} else {
				require.Equal(t, ExitOK, code)
			}

			requireNoSecret(t, "JSON report", string(js))
			requireNoSecret(t, "log file", string(logData))
			requireNoSecret(t, "summary", stdout.String())
		})
	}
}

func TestSecretsNeverLeakWithRealPostgres(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	env := healthyEnv(t)
	// The local server trusts loopback connections, so the password is
	// accepted and ignored; it must still never be printed.
	env.PostgresDSN = "postgres://postgres:s3cr3t@127.0.0.1:5432/postgres?sslmode=disable"
	r := Run(context.Background(), env, Options{Timeout: 5 * time.Second})
	require.Equal(t, Proceed, r.Decision, r.Reasons)
	require.Equal(t, "postgres://postgres:"+Redacted+"@127.0.0.1:5432/postgres", checkByName(t, r, CheckPostgres).Target)

	js, err := json.Marshal(r)
	require.NoError(t, err)
	requireNoSecret(t, "JSON", string(js))
	requireNoSecret(t, "log", r.LogLines())
	requireNoSecret(t, "summary", r.Summary())
	require.Equal(t, "set", checkByName(t, r, CheckFederationToken).Detail)
}

func TestWriteFiles(t *testing.T) {
	t.Parallel()
	r := Run(context.Background(), Env{}, Options{})
	dir := filepath.Join(t.TempDir(), "nested", "reports")
	require.NoError(t, r.WriteFiles(dir))

	js, err := os.ReadFile(filepath.Join(dir, "I.4_precheck.json"))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(js, []byte("{\n  \"decision\": \"PROCEED_SIMULATION\"")), string(js))

	var back Report
	require.NoError(t, json.Unmarshal(js, &back))
	require.Equal(t, r.Decision, back.Decision)
	require.Equal(t, r.Missing, back.Missing)
	require.Equal(t, r.Checks, back.Checks)
	require.True(t, r.GeneratedAt.Equal(back.GeneratedAt))

	logData, err := os.ReadFile(filepath.Join(dir, "logs", "I.4_precheck.log"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimRight(string(logData), "\n"), "\n")
	require.Len(t, lines, len(r.Checks)+1)
	for i, c := range r.Checks {
		require.Contains(t, lines[i], "check="+c.Name)
		require.Contains(t, lines[i], "status="+string(c.Status))
	}
	require.Contains(t, lines[len(lines)-1], "decision=PROCEED_SIMULATION")

	// Rewriting replaces the files and leaves no temporary file behind.
	require.NoError(t, r.WriteFiles(dir))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"I.4_precheck.json", "logs"}, names)
}

func TestWriteFilesEmptyReportHasArrays(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, Report{Decision: Block}.WriteFiles(dir))
	js, err := os.ReadFile(filepath.Join(dir, ReportFileName))
	require.NoError(t, err)
	require.NotContains(t, string(js), "null")
}

func TestWriteFilesError(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	require.Error(t, Report{}.WriteFiles(filepath.Join(file, "sub")))
}

func TestErr(t *testing.T) {
	t.Parallel()
	require.NoError(t, Report{Decision: Proceed}.Err())
	require.NoError(t, Report{Decision: ProceedSimulation, Reasons: []string{"x"}}.Err())
	require.EqualError(t, Report{Decision: Block}.Err(), "precheck BLOCK")
	require.EqualError(t, Report{Decision: Block, Reasons: []string{"fix a", "fix b"}}.Err(), "precheck BLOCK: fix a; fix b")
}

func TestMainWithEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string
		files    bool
	}{
		{"all unset", nil, nil, ExitOK, "PROCEED_SIMULATION", true},
		{"block", nil, map[string]string{EnvDecisionTimeoutMS: "nope"}, ExitBlock, "to fix:", true},
		{"help", []string{"-h"}, nil, ExitOK, "usage: fabric precheck", false},
		{"bad flag", []string{"-nope"}, nil, ExitBlock, "usage: fabric precheck", false},
		{"extra arg", []string{"extra"}, nil, ExitBlock, "unexpected arguments", false},
		{"bad timeout", []string{"-timeout", "0s"}, nil, ExitBlock, "-timeout must be positive", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "reports")
			args := append([]string{"-reports-dir", dir}, tc.args...)
			var out bytes.Buffer
			code := mainWithEnv(context.Background(), args, &out, envOf(mapLookup(tc.env)))
			require.Equal(t, tc.wantCode, code, out.String())
			require.Contains(t, out.String(), tc.wantOut)
			_, err := os.Stat(filepath.Join(dir, ReportFileName))
			require.Equal(t, tc.files, err == nil)
		})
	}
}

func TestMainWriteFailure(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	var out bytes.Buffer
	code := mainWithEnv(context.Background(), []string{"-reports-dir", filepath.Join(file, "x")}, &out, envOf(mapLookup(nil)))
	require.Equal(t, ExitError, code)
	require.Contains(t, out.String(), "cannot write the report")
}

// TestMainReadsOSEnv is not parallel: it sets process environment variables.
func TestMainReadsOSEnv(t *testing.T) {
	for _, name := range []string{
		EnvPostgresDSN, EnvVaultAddr, EnvCosignKeyPath, EnvGlobalRegistryURL, EnvFederationToken,
		EnvRedisURL, EnvKafkaURL, EnvPromURL, EnvNeuralFabricURL, EnvQuantumProvider,
	} {
		t.Setenv(name, "")
	}
	t.Setenv(EnvSimulationMode, "false")
	t.Setenv(EnvDecisionTimeoutMS, "1234")
	dir := t.TempDir()
	var out bytes.Buffer
	code := Main(context.Background(), []string{"-reports-dir", dir}, &out, nil)
	require.Equal(t, ExitBlock, code, out.String())
	require.Contains(t, out.String(), "BLOCK")
	require.Contains(t, out.String(), "decision timeout 1234 ms")
}

// envOf is an EnvLoader over lookup, ignoring the configuration path.
func envOf(lookup func(string) (string, bool)) EnvLoader {
	return func(string) (Env, error) { return FromEnviron(lookup), nil }
}
