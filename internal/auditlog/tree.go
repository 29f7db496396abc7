package auditlog

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// hasher is the RFC 6962 hasher of every tree here: SHA-256, leaf prefix 0x00,
// node prefix 0x01.
var hasher = rfc6962.DefaultHasher

// hashSize is the size of every node hash.
const hashSize = 32

type node = [hashSize]byte

// tree is an append-only Merkle tree kept in memory with every perfect
// subtree's hash, so proofs and roots for any size up to its own are
// O(log n) lookups and hashes. Level l holds the hashes of the perfect
// subtrees of 2^l leaves, left to right, as flat arrays (2n hashes, 64 bytes
// per leaf, in total). It is not safe for concurrent use.
type tree struct {
	levels [][]node
	size   uint64
}

// appendLeaf adds a leaf hash (hasher.HashLeaf of the leaf data).
func (t *tree) appendLeaf(h node) {
	level := 0
	for ; (t.size>>level)&1 == 1; level++ {
		row := t.levels[level]
		t.levels[level] = append(row, h)
		h = hashChildren(row[len(row)-1], h)
	}
	if level == len(t.levels) {
		t.levels = append(t.levels, nil)
	}
	t.levels[level] = append(t.levels[level], h)
	t.size++
}

func hashChildren(l, r node) node {
	var out node
	copy(out[:], hasher.HashChildren(l[:], r[:]))
	return out
}

// leafHash is the RFC 6962 leaf hash of an entry: the leaf data is the
// entry's 32-byte entry hash.
func leafHash(entryHash node) node {
	var out node
	copy(out[:], hasher.HashLeaf(entryHash[:]))
	return out
}

// leaf returns the leaf hash at index (< size).
func (t *tree) leaf(index uint64) node { return t.levels[0][index] }

func (t *tree) nodes(ids []compact.NodeID) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h := t.levels[id.Level][id.Index]
		out[i] = h[:]
	}
	return out
}

// root returns the root hash of the first size leaves (size <= t.size).
func (t *tree) root(size uint64) ([]byte, error) {
	if size > t.size {
		return nil, fmt.Errorf("auditlog: tree size %d > %d", size, t.size)
	}
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	hashes := t.nodes(compact.RangeNodes(0, size, nil))
	root := hashes[len(hashes)-1]
	for i := len(hashes) - 2; i >= 0; i-- {
		root = hasher.HashChildren(hashes[i], root)
	}
	return root, nil
}

// inclusion returns the RFC 6962 inclusion proof of leaf index in the tree of
// the first size leaves (index < size <= t.size).
func (t *tree) inclusion(index, size uint64) ([][]byte, error) {
	if size > t.size {
		return nil, fmt.Errorf("auditlog: tree size %d > %d", size, t.size)
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	return n.Rehash(t.nodes(n.IDs), hasher.HashChildren)
}

// consistency returns the RFC 6962 consistency proof between the trees of the
// first size1 and size2 leaves (size1 <= size2 <= t.size).
func (t *tree) consistency(size1, size2 uint64) ([][]byte, error) {
	if size2 > t.size {
		return nil, fmt.Errorf("auditlog: tree size %d > %d", size2, t.size)
	}
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	return n.Rehash(t.nodes(n.IDs), hasher.HashChildren)
}
