package canonical

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestJSONIsOrderAndFormatIndependent(t *testing.T) {
	t.Parallel()
	a, err := JSON([]byte(`{"b": 1.0, "a": "x", "c": [3, 2e0]}`))
	require.NoError(t, err)
	b, err := JSON([]byte(`{"c":[3,2],"a":"x","b":1}`))
	require.NoError(t, err)
	require.Equal(t, `{"a":"x","b":1,"c":[3,2]}`, string(a))
	require.Equal(t, a, b)
	require.Equal(t, SHA256Hex(a), SHA256Hex(b))
	require.Len(t, SHA256Hex(a), 64)
}

func TestJSONRejectsInvalid(t *testing.T) {
	t.Parallel()
	_, err := JSON([]byte(`{"a":`))
	require.Error(t, err)
}

func TestProtoMatchesMarshal(t *testing.T) {
	t.Parallel()
	s, err := structpb.NewStruct(map[string]any{"target": "serviceX", "action": "scale"})
	require.NoError(t, err)
	p, err := Proto(s)
	require.NoError(t, err)
	m, err := Marshal(map[string]any{"action": "scale", "target": "serviceX"})
	require.NoError(t, err)
	require.Equal(t, string(m), string(p))
}

func FuzzJSON(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[true,null,"x"]}`))
	f.Add([]byte(`[1e300, -0, 0.1]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := JSON(raw)
		if err != nil {
			return
		}
		again, err := JSON(out)
		require.NoError(t, err, "canonical output must parse again")
		require.Equal(t, out, again, "canonicalisation must be idempotent")
	})
}
