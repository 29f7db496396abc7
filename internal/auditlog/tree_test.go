package auditlog

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

func testLeaf(i uint64) node {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], i)
	return leafHash(sha256.Sum256(b[:]))
}

// The in-memory tree agrees with the merkle library's reference tree on every
// root, inclusion proof and consistency proof, and its proofs verify.
func TestTreeMatchesReference(t *testing.T) {
	t.Parallel()
	var got tree
	ref := testonly.New(rfc6962.DefaultHasher)
	const n = 130
	for i := range uint64(n) {
		l := testLeaf(i)
		got.appendLeaf(l)
		ref.Append(l[:])
	}
	empty, err := got.root(0)
	require.NoError(t, err)
	require.Equal(t, rfc6962.DefaultHasher.EmptyRoot(), empty)
	for size := uint64(1); size <= n; size++ {
		root, err := got.root(size)
		require.NoError(t, err)
		require.Equal(t, ref.HashAt(size), root, "root at %d", size)
		for _, index := range []uint64{0, size / 2, size - 1} {
			p, err := got.inclusion(index, size)
			require.NoError(t, err)
			want, err := ref.InclusionProof(index, size)
			require.NoError(t, err)
			require.Equal(t, want, p)
			l := got.leaf(index)
			require.NoError(t, proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, l[:], p, root))
		}
		for _, size1 := range []uint64{1, size / 3, size - 1} {
			p, err := got.consistency(size1, size)
			require.NoError(t, err)
			want, err := ref.ConsistencyProof(size1, size)
			require.NoError(t, err)
			require.Equal(t, want, p)
			if size1 > 0 {
				require.NoError(t, proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size, p, ref.HashAt(size1), root))
			}
		}
	}
	_, err = got.root(n + 1)
	require.Error(t, err)
	_, err = got.inclusion(n, n)
	require.Error(t, err)
	_, err = got.inclusion(0, n+1)
	require.Error(t, err)
	_, err = got.consistency(2, n+1)
	require.Error(t, err)
}
