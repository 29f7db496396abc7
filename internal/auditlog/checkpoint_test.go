package auditlog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

var (
	keysOnce sync.Once
	keysA    *Keys
)

func testKeys(t testing.TB) *Keys {
	keysOnce.Do(func() {
		var err error
		if keysA, err = GenerateKeys(); err != nil {
			panic(err)
		}
	})
	return keysA
}

func signed(t testing.TB, k *Keys) *Checkpoint {
	t.Helper()
	root := sha256.Sum256([]byte("root"))
	c, err := k.sign(Origin("t1"), 42, root[:], time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC))
	require.NoError(t, err)
	return c
}

func TestCheckpointFormat(t *testing.T) {
	t.Parallel()
	c := signed(t, testKeys(t))
	body := "decision-fabric/audit/t1\n42\n" + "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=\n" + "time 2025-06-01T12:00:00.123456Z\n"
	require.Equal(t, body, string(c.Body()))
	require.True(t, bytes.HasPrefix(c.Note, []byte(body+"\n— decision-fabric/audit ")), string(c.Note))
	require.Len(t, c.MLDSASignature, 3309)

	got, err := testKeys(t).Verifier().Verify(c.Note, c.MLDSASignature)
	require.NoError(t, err)
	require.Equal(t, c, got)

	require.Equal(t, "decision-fabric/audit/t%20%2B1%2Fx_y", Origin("t +1/x_y"))
}

func TestCheckpointVerifyRejects(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	v := k.Verifier()
	c := signed(t, k)
	other, err := GenerateKeys()
	require.NoError(t, err)
	byOther := signed(t, other)
	root2 := sha256.Sum256([]byte("other root"))
	c2, err := k.sign(Origin("t1"), 43, root2[:], c.Time)
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		note, sig []byte
		want      error
	}{
		"body changed":            {bytes.Replace(c.Note, []byte("\n42\n"), []byte("\n43\n"), 1), c.MLDSASignature, ErrBadSignature},
		"note by another key":     {byOther.Note, c.MLDSASignature, ErrBadSignature},
		"ML-DSA by another key":   {c.Note, byOther.MLDSASignature, ErrBadSignature},
		"ML-DSA of another body":  {c.Note, c2.MLDSASignature, ErrBadSignature},
		"ML-DSA truncated":        {c.Note, c.MLDSASignature[:100], ErrBadSignature},
		"no signature line":       {c.Body(), c.MLDSASignature, ErrMalformedCheckpoint},
		"not a note":              {[]byte("hello"), c.MLDSASignature, ErrMalformedCheckpoint},
		"control characters":      {append([]byte("\x01"), c.Note...), c.MLDSASignature, ErrMalformedCheckpoint},
		"signed, but not by ours": {byOther.Note, byOther.MLDSASignature, ErrBadSignature},
	} {
		_, err := v.Verify(tc.note, tc.sig)
		require.ErrorIs(t, err, tc.want, name)
	}

	// Extra signature lines (e.g. a witness cosignature) are ignored.
	cosigned, err := note.Sign(&note.Note{Text: string(c.Body())}, k.noteSigner, other.noteSigner)
	require.NoError(t, err)
	_, err = v.Verify(cosigned, c.MLDSASignature)
	require.NoError(t, err)
}

func TestParseCheckpointBodyIsStrict(t *testing.T) {
	t.Parallel()
	good := string(signed(t, testKeys(t)).Body())
	_, err := ParseCheckpointBody([]byte(good))
	require.NoError(t, err)
	for name, body := range map[string]string{
		"leading zero":     strings.Replace(good, "\n42\n", "\n042\n", 1),
		"size zero":        strings.Replace(good, "\n42\n", "\n0\n", 1),
		"short hash":       strings.Replace(good, "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=", "AAAA", 1),
		"other origin":     strings.Replace(good, "decision-fabric/audit/t1", "example.com/log", 1),
		"origin with +":    strings.Replace(good, "audit/t1", "audit/t+1", 1),
		"no time":          strings.Replace(good, "time 2025-06-01T12:00:00.123456Z\n", "", 1),
		"second extension": good + "more\n",
		"time not UTC":     strings.Replace(good, "12:00:00.123456Z", "12:00:00.123456+01:00", 1),
		"time unpadded":    strings.Replace(good, "12:00:00.123456Z", "12:00:00.1Z", 1),
		"no final newline": strings.TrimSuffix(good, "\n"),
	} {
		_, err := ParseCheckpointBody([]byte(body))
		require.ErrorIs(t, err, ErrMalformedCheckpoint, name)
	}
}

func TestKeysCreatedOnFirstUse(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "keys")
	var wg sync.WaitGroup
	got := make([]*Keys, 4)
	for i := range got {
		wg.Go(func() {
			var err error
			got[i], err = LoadOrCreateKeys(dir)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	for _, k := range got[1:] {
		require.Equal(t, got[0].Verifier().NoteVerifierKey(), k.Verifier().NoteVerifierKey())
		require.Equal(t, got[0].Verifier().MLDSAKeyID(), k.Verifier().MLDSAKeyID())
	}
	info, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), info.Mode().Perm())
	for name, mode := range map[string]fs.FileMode{Ed25519KeyFile: 0o600, MLDSAKeyFile: 0o600, Ed25519PubFile: 0o644, MLDSAPubFile: 0o644} {
		info, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err, name)
		require.Equal(t, mode, info.Mode().Perm(), name)
	}
	again, err := LoadOrCreateKeys(dir)
	require.NoError(t, err)
	require.Equal(t, got[0].Verifier().MLDSAKeyID(), again.Verifier().MLDSAKeyID(), "kept across restarts")

	// A verifier built from the public files alone verifies what the keys sign.
	vkey, err := os.ReadFile(filepath.Join(dir, Ed25519PubFile))
	require.NoError(t, err)
	pub, err := os.ReadFile(filepath.Join(dir, MLDSAPubFile))
	require.NoError(t, err)
	v, err := NewVerifier(string(vkey), pub)
	require.NoError(t, err)
	c := signed(t, again)
	_, err = v.Verify(c.Note, c.MLDSASignature)
	require.NoError(t, err)
	require.Equal(t, again.Verifier().MLDSAKeyID(), v.MLDSAKeyID())
	require.Len(t, v.MLDSAPublicKey(), 1952)
	require.Contains(t, string(v.MLDSAPublicKeyPEM()), "-----BEGIN PUBLIC KEY-----")

	require.ErrorIs(t, again.WriteFiles(dir), fs.ErrExist, "provisioning never overwrites a key")
	fresh := t.TempDir()
	require.NoError(t, again.WriteFiles(fresh))
	loaded, err := LoadKeys(filepath.Join(fresh, Ed25519KeyFile), filepath.Join(fresh, MLDSAKeyFile))
	require.NoError(t, err)
	require.Equal(t, again.Verifier().NoteVerifierKey(), loaded.Verifier().NoteVerifierKey())
}

func TestLoadKeysRejectsMalformed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k := testKeys(t)
	require.NoError(t, k.WriteFiles(dir))
	ed, ml := filepath.Join(dir, Ed25519KeyFile), filepath.Join(dir, MLDSAKeyFile)
	_, err := LoadKeys(filepath.Join(dir, "missing"), ml)
	require.ErrorIs(t, err, fs.ErrNotExist)

	bad := filepath.Join(dir, "bad")
	for name, content := range map[string]string{
		"not PEM":        "hello",
		"wrong type":     "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"not PKCS8":      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"an Ed25519 key": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFdBT8Zf3I8NxdeeA0pQTx7sQGjYWkN4ix0zZbkhu2FG\n-----END PRIVATE KEY-----\n",
	} {
		require.NoError(t, os.WriteFile(bad, []byte(content), 0o600))
		_, err := LoadKeys(ed, bad)
		require.Error(t, err, name)
	}
	require.NoError(t, os.WriteFile(bad, []byte("PRIVATE+KEY+example.com+00000000+AAAA"), 0o600))
	_, err = LoadKeys(bad, ml)
	require.Error(t, err)
	skey, _, err := note.GenerateKey(nil, "someone-else")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, []byte(skey), 0o600))
	_, err = LoadKeys(bad, ml)
	require.ErrorContains(t, err, "want \"decision-fabric/audit\"")

	_, err = NewVerifier("decision-fabric/audit+00000000+AAAA", k.Verifier().MLDSAPublicKeyPEM())
	require.Error(t, err)
	_, err = NewVerifier(k.Verifier().NoteVerifierKey(), []byte("nope"))
	require.Error(t, err)
}

// FuzzParseCheckpointBody: any input either fails with ErrMalformedCheckpoint
// or is a body Body() reproduces byte for byte; never a panic.
func FuzzParseCheckpointBody(f *testing.F) {
	f.Add(signed(f, testKeys(f)).Body())
	f.Add([]byte("decision-fabric/audit/t\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime 2025-01-01T00:00:00.000000Z\n"))
	f.Add([]byte("\n\n\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseCheckpointBody(body)
		if err != nil {
			require.True(t, errors.Is(err, ErrMalformedCheckpoint), "%v", err)
			return
		}
		require.Equal(t, string(body), string(c.Body()))
	})
}

// FuzzVerifyCheckpoint: arbitrary notes and signatures never panic and are
// accepted only if they are the genuine checkpoint.
func FuzzVerifyCheckpoint(f *testing.F) {
	k := testKeys(f)
	c := signed(f, k)
	f.Add(c.Note, c.MLDSASignature)
	f.Add(c.Body(), c.MLDSASignature)
	f.Add([]byte("x\n\n— decision-fabric/audit AAAAAAAA\n"), []byte{})
	f.Fuzz(func(t *testing.T, n, sig []byte) {
		got, err := k.Verifier().Verify(n, sig)
		if err != nil {
			require.True(t, errors.Is(err, ErrMalformedCheckpoint) || errors.Is(err, ErrBadSignature), "%v", err)
			return
		}
		require.Equal(t, string(c.Body()), string(got.Body()), "only the genuine body verifies")
	})
}

func TestKeysNeverPrintTheirSecrets(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	seed := k.mldsaSeed
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), k.LogValue().String()} {
		require.NotContains(t, s, k.skey)
		require.NotContains(t, s, strings.Split(k.skey, "+")[4])
		require.NotContains(t, s, fmt.Sprintf("%x", seed[:8]))
		require.Contains(t, s, k.Verifier().MLDSAKeyID())
	}
}
