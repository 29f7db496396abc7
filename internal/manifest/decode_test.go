package manifest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
)

func manifestStored(t testing.TB, replicas float64) []byte {
	t.Helper()
	params, err := structpb.NewStruct(map[string]any{"replicas": replicas, "monthly_cost": 1200.5, "note": "a <b> & c"})
	require.NoError(t, err)
	raw, err := canonical.Proto(&typesv1.Manifest{Action: "scale", Target: "serviceX", Impact: "low",
		Regions: []string{"eu-west", "us-east"}, Parameters: params})
	require.NoError(t, err)
	return raw
}

// Decode answers from its cache exactly as a fresh decode would, and
// every caller gets its own message.
func TestManifestDecodeCache(t *testing.T) {
	raw := manifestStored(t, 12)
	slow := &typesv1.Manifest{}
	require.NoError(t, decodeOptions.Unmarshal(raw, slow))

	first, err := Decode(raw)
	require.NoError(t, err)
	second, err := Decode(raw) // from the cache
	require.NoError(t, err)
	require.True(t, proto.Equal(slow, first))
	require.True(t, proto.Equal(slow, second))
	require.NotSame(t, first, second)

	first.Parameters.Fields["replicas"] = structpb.NewNumberValue(1)
	first.Regions[0] = "changed"
	third, err := Decode(raw)
	require.NoError(t, err)
	require.True(t, proto.Equal(slow, third), "a caller's change must not reach the cache")

	other, err := Decode(manifestStored(t, 13))
	require.NoError(t, err)
	require.Equal(t, 13.0, other.GetParameters().GetFields()["replicas"].GetNumberValue())

	_, err = Decode([]byte(`{"action":`))
	require.Error(t, err)
	_, err = Decode([]byte(`{"action":`)) // errors are not cached
	require.Error(t, err)
}

// A large manifest is decoded but not kept: the cache stays bounded in bytes.
func TestManifestDecodeCacheSkipsLargeManifests(t *testing.T) {
	m := &typesv1.Manifest{Action: "configure", Target: "svc", Parameters: &structpb.Struct{Fields: map[string]*structpb.Value{
		"config": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"blob": structpb.NewStringValue(strings.Repeat("x", maxCachedBytes))}}),
	}}}
	raw, _, err := Canonical(m)
	require.NoError(t, err)
	got, err := Decode(raw)
	require.NoError(t, err)
	require.True(t, proto.Equal(m, got))
	require.False(t, decoded.Contains(string(raw)))
}

var manifestBenchSink *typesv1.Manifest

// BenchmarkManifestDecode reads the same stored offer repeatedly, as status
// reads of a running negotiation do; BenchmarkManifestFloorProtojson is the
// decode it used to repeat every time.
func BenchmarkManifestDecode(b *testing.B) {
	raw := manifestStored(b, 12)
	b.ReportAllocs()
	for b.Loop() {
		m, err := Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		manifestBenchSink = m
	}
}

func BenchmarkManifestFloorProtojson(b *testing.B) {
	raw := manifestStored(b, 12)
	b.ReportAllocs()
	for b.Loop() {
		m := &typesv1.Manifest{}
		if err := decodeOptions.Unmarshal(raw, m); err != nil {
			b.Fatal(err)
		}
		manifestBenchSink = m
	}
}
