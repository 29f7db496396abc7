package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodeStrict(t *testing.T) {
	t.Parallel()
	type doc struct {
		Name string `yaml:"name"`
	}
	var d doc
	require.NoError(t, DecodeStrict([]byte("name: x\n"), 100, "thing", &d))
	require.Equal(t, "x", d.Name)
	for raw, want := range map[string]string{
		"":                                   "thing: empty file",
		"nam: x\n":                           "field nam not found",
		"name: x\n---\nname: y":              "exactly one YAML document",
		"name: " + string(make([]byte, 200)): "larger than 100 bytes",
	} {
		require.ErrorContains(t, DecodeStrict([]byte(raw), 100, "thing", &doc{}), want)
	}
	p := filepath.Join(t.TempDir(), "f.yaml")
	require.NoError(t, os.WriteFile(p, []byte("name: y\n"), 0o600))
	raw, err := ReadBounded(p, 100, "thing")
	require.NoError(t, err)
	require.Equal(t, "name: y\n", string(raw))
	_, err = ReadBounded(filepath.Join(t.TempDir(), "missing"), 100, "thing")
	require.ErrorContains(t, err, "thing:")
}
