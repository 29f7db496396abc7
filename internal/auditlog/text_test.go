package auditlog

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckpointTextRoundTrip(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	c := signed(t, k)
	text := c.Text()
	require.True(t, bytes.HasPrefix(text, c.Note))
	require.True(t, bytes.HasSuffix(text, []byte("\n")))
	require.Contains(t, string(text), "\n— "+MLDSASignatureName+" ")

	got, err := k.Verifier().VerifyText(text)
	require.NoError(t, err)
	require.Equal(t, c, got)
	tenant, ok := TenantOf(got.Origin)
	require.True(t, ok)
	require.Equal(t, "t1", tenant)
}

func TestCheckpointTextRejects(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	c := signed(t, k)
	text := string(c.Text())
	other, err := GenerateKeys()
	require.NoError(t, err)
	byOther := signed(t, other)
	root2 := sha256.Sum256([]byte("other root"))
	c2, err := k.sign(Origin("t1"), 43, root2[:], c.Time)
	require.NoError(t, err)
	mlLine := text[len(c.Note):]

	for name, tc := range map[string]struct {
		text string
		want error
	}{
		"no ML-DSA line":            {string(c.Note), ErrMalformedCheckpoint},
		"no final newline":          {strings.TrimSuffix(text, "\n"), ErrMalformedCheckpoint},
		"two ML-DSA lines":          {string(c.Note) + mlLine + mlLine, ErrMalformedCheckpoint},
		"ML-DSA line not canonical": {strings.TrimSuffix(text, "==\n") + "\n", ErrMalformedCheckpoint},
		"ML-DSA line truncated":     {string(c.Note) + mlLine[:200] + "\n", ErrMalformedCheckpoint},
		"size changed":              {strings.Replace(text, "\n42\n", "\n43\n", 1), ErrBadSignature},
		"ML-DSA of another body":    {string(c.Note) + string(c2.Text()[len(c2.Note):]), ErrBadSignature},
		"all by another key":        {string(byOther.Text()), ErrBadSignature},
		"note by another key":       {string(byOther.Note) + mlLine, ErrBadSignature},
		"empty":                     {"", ErrMalformedCheckpoint},
		"too large":                 {strings.Repeat("x\n", maxCheckpointText), ErrMalformedCheckpoint},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := k.Verifier().VerifyText([]byte(tc.text))
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestTenantOf(t *testing.T) {
	t.Parallel()
	for _, tenant := range []string{"t1", "t +1/x_y", "%", "é"} {
		got, ok := TenantOf(Origin(tenant))
		require.True(t, ok, tenant)
		require.Equal(t, tenant, got)
	}
	for _, origin := range []string{"", "decision-fabric/audit", "decision-fabric/audit/", "other/t1", "decision-fabric/audit/%2", "decision-fabric/audit/%zz", "decision-fabric/audit/%2a", "decision-fabric/audit/a b"} {
		_, ok := TenantOf(origin)
		require.False(t, ok, origin)
	}
}

func TestParseCheckpointFile(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	a, b := signed(t, k), signed(t, k)
	file := append(append(a.Text(), '\n'), append(b.Text(), '\n')...)
	recs, torn, err := ParseCheckpointFile(file)
	require.NoError(t, err)
	require.Zero(t, torn)
	require.Equal(t, [][]byte{a.Text(), b.Text()}, recs)

	// A crash mid-write leaves a torn last record: reported, not parsed.
	for cut := 1; cut <= len(b.Text()); cut += 97 {
		recs, torn, err := ParseCheckpointFile(file[:len(a.Text())+1+cut])
		require.NoError(t, err, cut)
		require.Equal(t, [][]byte{a.Text()}, recs)
		require.Equal(t, cut, torn)
	}
	// A record altered in the middle is an error, not a torn tail.
	_, _, err = ParseCheckpointFile(bytes.Replace(file, []byte("— "+MLDSASignatureName), []byte("— other"), 1))
	require.ErrorIs(t, err, ErrMalformedCheckpoint)
}

// FuzzVerifyText: the checkpoint text a verifier is given (a saved
// -trusted-checkpoint file, a GET /audit/checkpoint body) is untrusted input.
func FuzzVerifyText(f *testing.F) {
	k := testKeys(f)
	c := signed(f, k)
	f.Add(c.Text())
	f.Add(c.Note)
	f.Add([]byte("— " + MLDSASignatureName + " AAAA\n"))
	v := k.Verifier()
	f.Fuzz(func(t *testing.T, text []byte) {
		got, err := v.VerifyText(text)
		if err != nil {
			return
		}
		// Only the genuine checkpoint verifies, and its text is canonical.
		require.Equal(t, c.Body(), got.Body())
		again, err := v.VerifyText(got.Text())
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}

// FuzzParseCheckpointFile: a checkpoint file is read back by the auditor at
// start and by verifiers; it must never panic and records must parse alone.
func FuzzParseCheckpointFile(f *testing.F) {
	k := testKeys(f)
	c := signed(f, k)
	rec := append(c.Text(), '\n')
	f.Add(rec)
	f.Add(append(append([]byte{}, rec...), rec[:50]...))
	f.Add([]byte("\n\n\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, torn, err := ParseCheckpointFile(data)
		if err != nil {
			return
		}
		n := torn
		for _, r := range recs {
			_, _, _, err := ParseCheckpointText(r)
			require.NoError(t, err)
			n += len(r) + 1
		}
		require.Equal(t, len(data), n, "records and the torn tail account for every byte")
	})
}
