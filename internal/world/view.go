package world

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/decision-fabric/fabric/internal/canonical"
)

// A view is the snapshot of one target in some regions together with the stored
// states it was made from. It is a pure function of its inputs (tenant, target,
// regions, stored bytes), so it can be reused whenever the same bytes are read again,
// and it is never modified once made: it is shared by concurrent readers.
type view struct {
	tenantID, target string
	regions          []string // normalised
	states           [][]byte // the stored state of each region
	snap             Snapshot

	docOnce sync.Once
	doc     decoded // decode(snap), made on first use
	docErr  error
}

// newView makes the snapshot of states, the stored state of target in each region.
func newView(tenantID, target string, regions []string, states [][]byte) (*view, error) {
	per := make(map[string]any, len(regions))
	for i, r := range regions {
		var v any
		if err := json.Unmarshal(states[i], &v); err != nil {
			return nil, fmt.Errorf("world: stored state of %s/%s: %w", r, target, err)
		}
		per[r] = v
	}
	b, err := canonical.Marshal(map[string]any{"tenant_id": tenantID, "target": target, "regions": per})
	if err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	return &view{tenantID: tenantID, target: target, regions: regions, states: states,
		snap: Snapshot{JSON: b, SHA256: canonical.SHA256Hex(b)}}, nil
}

// decoded is the view's snapshot decoded as Plan reads it, decoded once. It is
// shared: callers must not modify it (plan does not).
func (v *view) decoded() (decoded, error) {
	v.docOnce.Do(func() { v.doc, v.docErr = decode(v.snap) })
	return v.doc, v.docErr
}

// matches reports whether v was made from exactly these inputs.
func (v *view) matches(tenantID, target string, regions []string, states [][]byte) bool {
	return v.tenantID == tenantID && v.target == target && slices.Equal(v.regions, regions) &&
		slices.EqualFunc(v.states, states, bytes.Equal)
}

// maxViews bounds the view cache: a few per decision in flight is all it needs.
const maxViews = 1024

// viewCache keeps the latest view of each (tenant, target, regions), so that reading
// an unchanged state again skips decoding, encoding and hashing it. A view is used
// only when the states just read from the store are byte-identical to those it was
// made from, so no change, by this process or any other, is ever masked; the cache
// holds no state of its own that could go stale. The zero value is ready to use.
type viewCache struct {
	mu sync.Mutex
	m  map[viewKey]*view
}

type viewKey struct{ tenantID, target, regions string }

func keyOf(tenantID, target string, regions []string) viewKey {
	return viewKey{tenantID, target, strings.Join(regions, "\x00")}
}

// get returns the cached view made from exactly these inputs, or nil.
func (c *viewCache) get(tenantID, target string, regions []string, states [][]byte) *view {
	if v := c.lookup(tenantID, target, regions); v != nil && v.matches(tenantID, target, regions, states) {
		return v
	}
	return nil
}

// lookup returns the cached view of (tenant, target, regions), whatever states it was
// made from, or nil: the caller checks that it is the one it wants.
func (c *viewCache) lookup(tenantID, target string, regions []string) *view {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[keyOf(tenantID, target, regions)]
}

// put makes v the cached view of its (tenant, target, regions). When the cache is
// full an arbitrary other entry goes first.
func (c *viewCache) put(v *view) {
	k := keyOf(v.tenantID, v.target, v.regions)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[viewKey]*view)
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxViews {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
}
