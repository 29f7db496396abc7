// Package events publishes the coordinator's lifecycle events to Kafka through its
// transactional outbox (docs/events.md): the coordinator stores each committed state
// transition as a store.LifecycleEvent in the transition's own transaction (Stage); a
// Relay claims them with leases, publishes them with an idempotent franz-go producer
// (acks=all), keyed by proposal id, and deletes each once the broker acknowledged it.
package events

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/events/v1"
	"github.com/decision-fabric/fabric/internal/store"
)

// The record's headers and their values (docs/events.md).
const (
	HeaderEventID     = "event-id"
	HeaderContentType = "content-type"
	ContentType       = "application/x-protobuf; messageType=decisionfabric.events.v1.LifecycleEvent"
)

// MaxReason bounds LifecycleEvent.reason, in bytes (cut at a character boundary).
const MaxReason = 1024

// EventID is the id of the event of a proposal reaching version.
func EventID(proposalID string, version int64) string {
	return proposalID + ":" + strconv.FormatInt(version, 10)
}

// New renders the transition of proposal p (tenant, id) from state from to state to
// at version, committed at at, as an outbox row. reason is cut to MaxReason bytes.
func New(tenantID, proposalID, from, to, reason string, version int64, at time.Time) (*store.LifecycleEvent, error) {
	ev := &eventsv1.LifecycleEvent{
		EventId: EventID(proposalID, version), TenantId: tenantID, ProposalId: proposalID,
		FromState: from, ToState: to, Reason: cut(reason, MaxReason), Version: version,
		OccurredAt: timestamppb.New(at),
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("events: encode %s: %w", ev.EventId, err)
	}
	if len(raw) > store.MaxEventPayload {
		return nil, fmt.Errorf("events: event %s is %d bytes, over %d", ev.EventId, len(raw), store.MaxEventPayload)
	}
	return &store.LifecycleEvent{EventID: ev.EventId, TenantID: tenantID, ProposalID: proposalID, Payload: raw, CreatedAt: at}, nil
}

// Record is e as published to topic: key the proposal id, value the payload, headers
// the event id and the content type.
func Record(topic string, e *store.LifecycleEvent) *kgo.Record {
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(e.ProposalID),
		Value: e.Payload,
		Headers: []kgo.RecordHeader{
			{Key: HeaderEventID, Value: []byte(e.EventID)},
			{Key: HeaderContentType, Value: []byte(ContentType)},
		},
	}
}

// ErrInvalid is a record value that is not a lifecycle event.
var ErrInvalid = errors.New("events: not a lifecycle event")

// Decode reads a record value as a consumer does, refusing what is not a well-formed
// lifecycle event: larger than store.MaxEventPayload, not protobuf, or without an event
// id, tenant, proposal, target state, positive version or time.
func Decode(value []byte) (*eventsv1.LifecycleEvent, error) {
	if len(value) > store.MaxEventPayload {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrInvalid, len(value), store.MaxEventPayload)
	}
	ev := &eventsv1.LifecycleEvent{}
	if err := proto.Unmarshal(value, ev); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	switch {
	case ev.GetEventId() == "", ev.GetTenantId() == "", ev.GetProposalId() == "", ev.GetToState() == "":
		return nil, fmt.Errorf("%w: event id, tenant, proposal and to_state are required", ErrInvalid)
	case ev.GetVersion() <= 0:
		return nil, fmt.Errorf("%w: version %d", ErrInvalid, ev.GetVersion())
	case ev.GetOccurredAt() == nil || ev.GetOccurredAt().CheckValid() != nil:
		return nil, fmt.Errorf("%w: occurred_at is missing or invalid", ErrInvalid)
	case ev.GetEventId() != EventID(ev.GetProposalId(), ev.GetVersion()):
		return nil, fmt.Errorf("%w: event id %q is not proposal:version", ErrInvalid, ev.GetEventId())
	case len(ev.GetReason()) > MaxReason:
		return nil, fmt.Errorf("%w: reason over %d bytes", ErrInvalid, MaxReason)
	}
	return ev, nil
}

// cut makes s valid UTF-8 (protobuf strings must be) of at most n bytes, cut at a
// character boundary.
func cut(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
