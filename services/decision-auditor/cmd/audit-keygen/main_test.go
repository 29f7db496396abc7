package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auditlog"
)

func TestKeygenWritesKeysOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var out bytes.Buffer
	require.NoError(t, realMain(context.Background(), []string{"-dir", dir}, &out))
	require.Contains(t, out.String(), "note verifier key: decision-fabric/audit+")
	info, err := os.Stat(filepath.Join(dir, auditlog.MLDSAKeyFile))
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), info.Mode().Perm())
	_, err = auditlog.LoadKeys(filepath.Join(dir, auditlog.Ed25519KeyFile), filepath.Join(dir, auditlog.MLDSAKeyFile))
	require.NoError(t, err)
	require.ErrorIs(t, realMain(context.Background(), []string{"-dir", dir}, &out), fs.ErrExist, "never overwrites")
}
