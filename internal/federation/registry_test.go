package federation

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/regionkeys"
)

func testKey(t testing.TB) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return priv, regionkeys.PublicKeyPEM(pub)
}

func registryJSON(t testing.TB, regions ...map[string]any) []byte {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"regions": regions})
	require.NoError(t, err)
	return raw
}

func TestParseRegistry(t *testing.T) {
	_, k1 := testKey(t)
	_, k2 := testKey(t)
	good := registryJSON(t,
		map[string]any{"name": "eu-west", "endpoint": "127.0.0.1:9403", "weight": 3, "public_key": k1},
		map[string]any{"name": "us-east", "endpoint": "region.us-east.example:9403", "public_key": k2})
	r, err := ParseRegistry(good)
	require.NoError(t, err)
	require.Len(t, r.Regions, 2)
	require.Equal(t, int64(3), r.Regions[0].Weight)
	require.Equal(t, int64(1), r.Regions[1].Weight, "weight defaults to 1")
	keys, err := r.Keys()
	require.NoError(t, err)
	pub, ok := keys.Key("us-east")
	require.True(t, ok)
	require.Equal(t, regionkeys.PublicKeyPEM(pub), k2)

	bad := map[string]struct {
		raw  string
		want string
	}{
		"unknown member": {strings.Replace(string(good), `"weight":3`, `"weight":3,"trusted":true`, 1), "unknown field"},
		"trailing data":  {string(good) + `{}`, "after the JSON object"},
		"no regions":     {`{"regions":[]}`, "at least one region"},
		"bad name":       {string(registryJSON(t, map[string]any{"name": "EU_WEST", "endpoint": "a:1", "public_key": k1})), "name"},
		"no port":        {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "host", "public_key": k1})), "host:port"},
		"port zero":      {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "host:0", "public_key": k1})), "port"},
		"bad host":       {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "ho st:1", "public_key": k1})), "host"},
		"weight 0":       {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "h:1", "weight": 0, "public_key": k1})), "weight 0"},
		"weight big":     {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "h:1", "weight": 1001, "public_key": k1})), "weight"},
		"no key":         {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "h:1"})), "public_key: required"},
		"bad key":        {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "h:1", "public_key": "nope"})), "public_key"},
		"dup name": {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "h:1", "public_key": k1},
			map[string]any{"name": "a", "endpoint": "h:2", "public_key": k2})), "duplicate"},
		"dup endpoint": {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "h:1", "public_key": k1},
			map[string]any{"name": "b", "endpoint": "h:1", "public_key": k2})), "endpoint"},
		"shared key": {string(registryJSON(t, map[string]any{"name": "a", "endpoint": "h:1", "public_key": k1},
			map[string]any{"name": "b", "endpoint": "h:2", "public_key": k1})), "also a's"},
		"not json":  {`regions: []`, "registry"},
		"too large": {strings.Repeat(" ", MaxRegistryBytes+1), "larger than"},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseRegistry([]byte(c.raw))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestFetchRegistry(t *testing.T) {
	_, k1 := testKey(t)
	doc := registryJSON(t, map[string]any{"name": "eu-west", "endpoint": "127.0.0.1:9403", "public_key": k1})
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, http.MethodGet, r.Method)
		w.WriteHeader(status)
		_, _ = w.Write(doc)
	}))
	defer srv.Close()
	ctx := context.Background()

	r, err := FetchRegistry(ctx, srv.Client(), srv.URL+"/registry.json")
	require.NoError(t, err)
	require.Equal(t, "eu-west", r.Regions[0].Name)

	status = http.StatusServiceUnavailable
	withCreds := strings.Replace(srv.URL, "http://", "http://user:s3cret-pass@", 1)
	_, err = FetchRegistry(ctx, srv.Client(), withCreds)
	require.ErrorContains(t, err, "HTTP 503")
	require.NotContains(t, err.Error(), "s3cret-pass", "credentials never reach an error")

	status = http.StatusOK
	doc = []byte(`{"regions":[{"name":"eu-west"}]}`)
	_, err = FetchRegistry(ctx, srv.Client(), srv.URL)
	require.ErrorContains(t, err, "endpoint")

	srv.Close()
	_, err = FetchRegistry(ctx, nil, withCreds)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret-pass")

	_, err = FetchRegistry(ctx, nil, "ftp://example/registry")
	require.ErrorContains(t, err, "http(s)")
}

// FuzzParseRegistry: the registry is untrusted input (a file or an HTTP answer): it
// never panics, and what it accepts is within the limits.
func FuzzParseRegistry(f *testing.F) {
	_, k1 := testKey(f)
	f.Add(registryJSON(f, map[string]any{"name": "eu-west", "endpoint": "127.0.0.1:9403", "weight": 2, "public_key": k1}))
	f.Add([]byte(`{"regions":[{"name":"a","endpoint":"[::1]:1","public_key":""}]}`))
	f.Add([]byte(`{"regions":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ParseRegistry(raw)
		if err != nil {
			return
		}
		require.NotEmpty(t, r.Regions)
		require.LessOrEqual(t, len(r.Regions), MaxRegions)
		for _, g := range r.Regions {
			require.True(t, regionkeys.ValidRegion(g.Name))
			require.NoError(t, validEndpoint(g.Endpoint))
			require.Len(t, g.PublicKey, ed25519.PublicKeySize)
			require.True(t, g.Weight >= 1 && g.Weight <= MaxWeight)
		}
	})
}
