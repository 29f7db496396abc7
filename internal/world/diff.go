package world

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// HoursPerMonth converts an hourly price to a monthly one (365 × 24 / 12).
const HoursPerMonth = 730

// RegionChange is what a change does to one region: its replicas before, the price of a
// replica-hour, and the change in replicas.
type RegionChange struct {
	Region             string
	Replicas           int
	CostPerReplicaHour float64
	ReplicasDelta      int
}

// snapshotDoc is the part of a snapshot's JSON a diff reads.
type snapshotDoc struct {
	Regions map[string]struct {
		Replicas           float64 `json:"replicas"`
		CostPerReplicaHour float64 `json:"cost_per_replica_hour"`
	} `json:"regions"`
}

// Diff compares two snapshots of one target (pre, and post as Plan or Apply returned
// it), region by region, sorted by name. A region only in post starts from 0 replicas.
func Diff(pre, post Snapshot) ([]RegionChange, error) {
	var a, b snapshotDoc
	if err := json.Unmarshal(pre.JSON, &a); err != nil {
		return nil, fmt.Errorf("world: pre-state: %w", err)
	}
	if err := json.Unmarshal(post.JSON, &b); err != nil {
		return nil, fmt.Errorf("world: post-state: %w", err)
	}
	names := make([]string, 0, len(b.Regions))
	for name := range b.Regions {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]RegionChange, 0, len(names))
	for _, name := range names {
		before, after := a.Regions[name], b.Regions[name]
		out = append(out, RegionChange{
			Region: name, Replicas: int(math.Round(before.Replicas)), CostPerReplicaHour: after.CostPerReplicaHour,
			ReplicasDelta: int(math.Round(after.Replicas - before.Replicas)),
		})
	}
	return out, nil
}

// Totals sums a diff: the change in replicas and in monthly cost.
func Totals(changes []RegionChange) (replicas int64, monthlyCost float64) {
	for _, c := range changes {
		replicas += int64(c.ReplicasDelta)
		monthlyCost += float64(c.ReplicasDelta) * c.CostPerReplicaHour * HoursPerMonth
	}
	return replicas, monthlyCost
}

// Line is one value that differs between two snapshots: its JSON path and its JSON
// before and after ("" when absent).
type Line struct {
	Path, Before, After string
}

// Lines compares two snapshots value by value (every leaf of their JSON, by path such
// as "regions.eu-west.replicas"), in path order: what a change would set, for a person
// to read.
func Lines(pre, post Snapshot) ([]Line, error) {
	var a, b any
	if err := json.Unmarshal(pre.JSON, &a); err != nil {
		return nil, fmt.Errorf("world: pre-state: %w", err)
	}
	if err := json.Unmarshal(post.JSON, &b); err != nil {
		return nil, fmt.Errorf("world: post-state: %w", err)
	}
	before, after := map[string]string{}, map[string]string{}
	flatten("", a, before)
	flatten("", b, after)
	paths := make([]string, 0, len(before)+len(after))
	for p := range before {
		paths = append(paths, p)
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var out []Line
	for _, p := range paths {
		if before[p] != after[p] {
			out = append(out, Line{Path: p, Before: before[p], After: after[p]})
		}
	}
	return out, nil
}

// flatten records every leaf of v under its path (objects by key, arrays as leaves).
func flatten(path string, v any, out map[string]string) {
	if m, ok := v.(map[string]any); ok && len(m) > 0 {
		for k, c := range m {
			p := k
			if path != "" {
				p = path + "." + k
			}
			flatten(p, c, out)
		}
		return
	}
	raw, err := json.Marshal(v)
	if err != nil {
		raw = []byte(fmt.Sprint(v))
	}
	out[path] = string(raw)
}
