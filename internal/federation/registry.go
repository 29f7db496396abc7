// Package federation holds what the negotiators of a federation share: the registry of
// the regions (each region's gRPC endpoint, weight and public key) and how regions
// authenticate each other (the federation token as a bearer on the gRPC metadata,
// compared in constant time, and mutual TLS when certificates are configured).
//
// The registry comes from GLOBAL_REGISTRY_URL (an HTTP GET returning the JSON below)
// when it is set, from a file (federation.registry_file) otherwise:
//
//	{"regions": [
//	  {"name": "eu-west", "endpoint": "10.0.0.1:9403", "weight": 1,
//	   "public_key": "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n"}
//	]}
//
// It is validated strictly (ParseRegistry): unknown members, a trailing value, a
// duplicate region, endpoint or key, a malformed name, endpoint, weight or key are
// errors naming the entry. The public keys are the only keys a coordinator checks
// votes with: a key a vote carries is never trusted.
package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/regionkeys"
)

// Limits of a registry document.
const (
	MaxRegistryBytes = 1 << 20
	MaxRegions       = 64
	MaxWeight        = 1000
	maxEndpointBytes = 255
	// FetchTimeout bounds one GET of GLOBAL_REGISTRY_URL.
	FetchTimeout = 10 * time.Second
)

// Region is one registered region.
type Region struct {
	// Name is the region's name (regionkeys.ValidRegion).
	Name string
	// Endpoint is host:port of the region's RegionService listener.
	Endpoint string
	// Weight counts under the weighted quorum rule (1..MaxWeight).
	Weight int64
	// PublicKey verifies the region's votes.
	PublicKey ed25519.PublicKey
}

// Registry is a validated registry: its regions in document order.
type Registry struct {
	Regions []Region
}

// Keys returns the registry's keys as a region key registry (internal/regionkeys), the
// one a quorum certificate of this federation verifies against.
func (r *Registry) Keys() (*regionkeys.Registry, error) {
	m := make(map[string]ed25519.PublicKey, len(r.Regions))
	for _, g := range r.Regions {
		m[g.Name] = g.PublicKey
	}
	return regionkeys.New(m)
}

// Region returns the named region.
func (r *Registry) Region(name string) (Region, bool) {
	for _, g := range r.Regions {
		if g.Name == name {
			return g, true
		}
	}
	return Region{}, false
}

type registryDoc struct {
	Regions []regionDoc `json:"regions"`
}

type regionDoc struct {
	Name      string `json:"name"`
	Endpoint  string `json:"endpoint"`
	Weight    *int64 `json:"weight"`
	PublicKey string `json:"public_key"`
}

// ParseRegistry decodes and validates a registry document strictly.
func ParseRegistry(raw []byte) (*Registry, error) {
	if len(raw) > MaxRegistryBytes {
		return nil, fmt.Errorf("federation: registry: larger than %d bytes", MaxRegistryBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var doc registryDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("federation: registry: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("federation: registry: unexpected data after the JSON object")
	}
	if len(doc.Regions) == 0 {
		return nil, errors.New("federation: registry: regions: at least one region is required")
	}
	if len(doc.Regions) > MaxRegions {
		return nil, fmt.Errorf("federation: registry: regions: at most %d", MaxRegions)
	}
	out := &Registry{Regions: make([]Region, 0, len(doc.Regions))}
	names, endpoints, keys := map[string]bool{}, map[string]string{}, map[string]string{}
	for i, d := range doc.Regions {
		g, err := d.validate()
		if err != nil {
			return nil, fmt.Errorf("federation: registry: regions[%d]: %w", i, err)
		}
		if names[g.Name] {
			return nil, fmt.Errorf("federation: registry: regions[%d]: name %q: duplicate", i, g.Name)
		}
		if other, dup := endpoints[g.Endpoint]; dup {
			return nil, fmt.Errorf("federation: registry: regions[%d] (%s): endpoint %q is also %s's", i, g.Name, g.Endpoint, other)
		}
		id := regionkeys.KeyID(g.PublicKey)
		if other, dup := keys[id]; dup {
			// One key for two regions would let one region vote for the other.
			return nil, fmt.Errorf("federation: registry: regions[%d] (%s): public_key is also %s's", i, g.Name, other)
		}
		names[g.Name], endpoints[g.Endpoint], keys[id] = true, g.Name, g.Name
		out.Regions = append(out.Regions, g)
	}
	return out, nil
}

func (d regionDoc) validate() (Region, error) {
	g := Region{Name: d.Name, Endpoint: d.Endpoint, Weight: 1}
	if !regionkeys.ValidRegion(d.Name) {
		return g, fmt.Errorf("name %q: want 1-64 of [a-z0-9-], starting with a letter or digit", truncate(d.Name))
	}
	if err := validEndpoint(d.Endpoint); err != nil {
		return g, fmt.Errorf("endpoint %q: %w", truncate(d.Endpoint), err)
	}
	if d.Weight != nil {
		if *d.Weight < 1 || *d.Weight > MaxWeight {
			return g, fmt.Errorf("weight %d: want 1..%d", *d.Weight, MaxWeight)
		}
		g.Weight = *d.Weight
	}
	if d.PublicKey == "" {
		return g, errors.New("public_key: required (PEM \"PUBLIC KEY\", Ed25519)")
	}
	pub, err := regionkeys.ParsePublicKeyPEM(d.PublicKey)
	if err != nil {
		return g, fmt.Errorf("public_key: %w", err)
	}
	g.PublicKey = pub
	return g, nil
}

// validEndpoint accepts host:port with a numeric port 1..65535 and a host name or IP.
func validEndpoint(ep string) error {
	if ep == "" {
		return errors.New("required (host:port)")
	}
	if len(ep) > maxEndpointBytes {
		return fmt.Errorf("longer than %d bytes", maxEndpointBytes)
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return errors.New("want host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return fmt.Errorf("port %q: want 1..65535", port)
	}
	if host == "" {
		return errors.New("host: required")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("host %q: not a host name or IP address", host)
		}
		if strings.IndexFunc(label, notHostChar) >= 0 {
			return fmt.Errorf("host %q: not a host name or IP address", host)
		}
	}
	return nil
}

// notHostChar reports a character a host name label cannot hold.
func notHostChar(c rune) bool {
	return (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-'
}

// truncate bounds what an error echoes of untrusted input.
func truncate(s string) string {
	const limit = 80
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}

// LoadRegistryFile reads and validates a registry file.
func LoadRegistryFile(path string) (*Registry, error) {
	raw, err := config.ReadBounded(path, MaxRegistryBytes, "federation: registry_file")
	if err != nil {
		return nil, err
	}
	r, err := ParseRegistry(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// FetchRegistry GETs the registry from rawURL (GLOBAL_REGISTRY_URL) with client
// (http.DefaultClient when nil), bounded by FetchTimeout and MaxRegistryBytes. Errors
// never include the URL's credentials.
func FetchRegistry(ctx context.Context, client *http.Client, rawURL string) (*Registry, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("federation: GLOBAL_REGISTRY_URL: want an http(s) URL")
	}
	shown := u.Redacted()
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("federation: registry %s: %w", shown, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the URL with its credentials: report the cause alone.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("federation: registry %s: %w", shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("federation: registry %s: HTTP %d", shown, resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxRegistryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("federation: registry %s: %w", shown, err)
	}
	r, err := ParseRegistry(raw)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", shown, err)
	}
	return r, nil
}
