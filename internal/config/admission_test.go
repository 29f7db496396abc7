package config

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAdmissionYAMLOverlaysDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(writeFile(t, "admission:\n  max_queue: 5\n  max_wait: 100ms\n  tenant:\n    rate: 2.5\n"), nil)
	require.NoError(t, err)
	want := DefaultAdmission()
	want.MaxQueue, want.MaxWait, want.Tenant.Rate = 5, Duration(100*time.Millisecond), 2.5
	require.Equal(t, want, c.Admission, "unset keys keep their defaults")

	_, err = Load(writeFile(t, "admission:\n  max_inflight: 3\n"), nil)
	require.ErrorContains(t, err, "max_inflight", "unknown keys are errors")
}

func TestAdmissionValidationNamesTheKey(t *testing.T) {
	t.Parallel()
	for key, edit := range map[string]func(a *Admission){
		"admission.max_in_flight":         func(a *Admission) { a.MaxInFlight = 0 },
		"admission.max_queue":             func(a *Admission) { a.MaxQueue = -1 },
		"admission.max_wait":              func(a *Admission) { a.MaxWait = Duration(2 * time.Minute) },
		"admission.retry_after":           func(a *Admission) { a.RetryAfter = Duration(10 * time.Millisecond) },
		"admission.degraded_for":          func(a *Admission) { a.DegradedFor = -1 },
		"admission.max_streams":           func(a *Admission) { a.MaxStreams = 0 },
		"admission.service_max_in_flight": func(a *Admission) { a.ServiceMaxInFlight = 0 },
		"admission.tenant.rate":           func(a *Admission) { a.Tenant.Rate = -1 },
		"admission.tenant.burst":          func(a *Admission) { a.Tenant.Burst = -1 },
		"admission.tenant.max_in_flight":  func(a *Admission) { a.Tenant.MaxInFlight = -1 },
	} {
		c := Default()
		edit(&c.Admission)
		require.ErrorContains(t, c.Validate(), key, key)
	}
}

// The example configurations show the admission defaults, as they say.
func TestAdmissionExamplesShowTheDefaults(t *testing.T) {
	t.Parallel()
	examples, err := filepath.Glob("../../services/*/config.example.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	for _, path := range examples {
		c, err := Load(path, nil)
		require.NoError(t, err, path)
		require.Equal(t, DefaultAdmission(), c.Admission, path)
	}
}
