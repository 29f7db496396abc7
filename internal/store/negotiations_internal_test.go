package store

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func regionsJSON(t testing.TB, weight int64) []byte {
	t.Helper()
	raw, err := json.Marshal([]NegotiationRegion{
		{Region: "eu-west", Weight: weight, KeyID: "k1", PublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
		{Region: "us-east", Weight: 1, KeyID: "k2", PublicKey: "-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----\n"},
	})
	require.NoError(t, err)
	return raw
}

// decodeRegions answers from its cache exactly as json.Unmarshal would, and
// every caller owns its slice.
func TestDecodeRegionsCache(t *testing.T) {
	raw := regionsJSON(t, 3)
	var slow []NegotiationRegion
	require.NoError(t, json.Unmarshal(raw, &slow))

	first, err := decodeRegions(raw)
	require.NoError(t, err)
	require.Equal(t, slow, first)
	first[0].Weight = 99
	second, err := decodeRegions(raw) // from the cache
	require.NoError(t, err)
	require.Equal(t, slow, second, "a caller's change must not reach the cache")

	other, err := decodeRegions(regionsJSON(t, 4))
	require.NoError(t, err)
	require.Equal(t, int64(4), other[0].Weight)

	for _, null := range []string{"null", "null"} {
		got, err := decodeRegions([]byte(null))
		require.NoError(t, err)
		require.Nil(t, got)
	}
	for range 2 { // errors are not cached
		_, err = decodeRegions([]byte(`[{"region":`))
		require.Error(t, err)
	}
}

var benchRegions []NegotiationRegion

// BenchmarkDecodeRegions decodes the same regions column repeatedly, as every
// read of a negotiation does; BenchmarkFloorRegionsJSON is the json.Unmarshal
// it used to repeat every time.
func BenchmarkDecodeRegions(b *testing.B) {
	raw := regionsJSON(b, 3)
	b.ReportAllocs()
	for b.Loop() {
		r, err := decodeRegions(raw)
		if err != nil {
			b.Fatal(err)
		}
		benchRegions = r
	}
}

func BenchmarkFloorRegionsJSON(b *testing.B) {
	raw := regionsJSON(b, 3)
	b.ReportAllocs()
	for b.Loop() {
		var r []NegotiationRegion
		if err := json.Unmarshal(raw, &r); err != nil {
			b.Fatal(err)
		}
		benchRegions = r
	}
}
