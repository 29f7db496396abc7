package config

import (
	"errors"
	"fmt"
	"time"
)

// Admission bounds the work each service takes on (internal/admission): requests run
// up to MaxInFlight at a time per service, up to MaxQueue more wait at most MaxWait for
// a slot, and the rest are refused at once with 503 and Retry-After. Each tenant has its
// own quota inside that (429 and Retry-After beyond it), and calls between the fabric's
// services have their own budget, so the work a service already accepted is never shed
// in favour of new requests. docs/operations.md explains how to size them.
type Admission struct {
	// MaxInFlight is how many requests one service runs at once.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxQueue is how many more may wait for a slot; beyond it: 503 at once.
	MaxQueue int `yaml:"max_queue"`
	// MaxWait bounds a wait in the queue; a request still waiting then gets 503.
	MaxWait Duration `yaml:"max_wait"`
	// RetryAfter is the Retry-After of a 503 (whole seconds, at least 1).
	RetryAfter Duration `yaml:"retry_after"`
	// DegradedFor is how long GET /health says "degraded" after the last 503.
	DegradedFor Duration `yaml:"degraded_for"`
	// MaxStreams bounds the server streams (watches) and long polls (GetProposal with
	// wait_ms) one service holds open; they do not take request slots, as they mostly
	// wait.
	MaxStreams int `yaml:"max_streams"`
	// Tenant is each tenant's quota, per service.
	Tenant TenantQuota `yaml:"tenant"`
	// ServiceMaxInFlight is the budget of calls made with the fabric's service identity
	// (one service calling another, e.g. the coordinator's audit events): they bypass
	// the tenant quotas and the queue above, and wait MaxWait at most for one of these.
	ServiceMaxInFlight int `yaml:"service_max_in_flight"`
}

// TenantQuota is one tenant's share of a service.
type TenantQuota struct {
	// Rate is the sustained requests per second a tenant may send one service; 0 turns
	// the rate limit off.
	Rate float64 `yaml:"rate"`
	// Burst is the token bucket's size: requests a tenant may send at once above Rate.
	// 0 means max(1, Rate).
	Burst int `yaml:"burst"`
	// MaxInFlight is how many of a tenant's requests one service runs or queues at
	// once; 0 turns the limit off.
	MaxInFlight int `yaml:"max_in_flight"`
}

// DefaultAdmission are the built-in limits: sized for one service on two cores with
// the embedded store (docs/operations.md, "Admission control").
func DefaultAdmission() Admission {
	return Admission{
		MaxInFlight:        32,
		MaxQueue:           32,
		MaxWait:            Duration(300 * time.Millisecond),
		RetryAfter:         Duration(time.Second),
		DegradedFor:        Duration(10 * time.Second),
		MaxStreams:         1000,
		Tenant:             TenantQuota{MaxInFlight: 48},
		ServiceMaxInFlight: 64,
	}
}

// Validate names the first invalid admission setting.
func (a Admission) Validate() error {
	switch {
	case a.MaxInFlight < 1:
		return errors.New("admission.max_in_flight: must be at least 1")
	case a.MaxQueue < 0:
		return errors.New("admission.max_queue: must not be negative")
	case a.MaxWait < 0 || time.Duration(a.MaxWait) > time.Minute:
		return fmt.Errorf("admission.max_wait %s: want 0..1m", time.Duration(a.MaxWait))
	case a.RetryAfter < Duration(time.Second) || time.Duration(a.RetryAfter) > time.Hour:
		return fmt.Errorf("admission.retry_after %s: want 1s..1h", time.Duration(a.RetryAfter))
	case a.DegradedFor < 0:
		return errors.New("admission.degraded_for: must not be negative")
	case a.MaxStreams < 1:
		return errors.New("admission.max_streams: must be at least 1")
	case a.ServiceMaxInFlight < 1:
		return errors.New("admission.service_max_in_flight: must be at least 1")
	case a.Tenant.Rate < 0:
		return errors.New("admission.tenant.rate: must not be negative")
	case a.Tenant.Burst < 0:
		return errors.New("admission.tenant.burst: must not be negative")
	case a.Tenant.MaxInFlight < 0:
		return errors.New("admission.tenant.max_in_flight: must not be negative")
	}
	return nil
}
