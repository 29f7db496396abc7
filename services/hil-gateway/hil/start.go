package hil

import (
	"time"

	"github.com/decision-fabric/fabric/internal/notify"
)

// Background tunes the gateway's background work.
type Background struct {
	// Owner names this process in notification leases ("" = random).
	Owner string
	// Sweep is how often requests past their deadline are closed (default 1s).
	Sweep time.Duration
	// Delivery tunes the notification deliverer.
	Delivery DeliveryOptions
}

// Start runs the notification deliverer and the request sweeper until Close.
func (s *Service) Start(b Background) {
	chans := map[string]notify.Channel{}
	for _, c := range s.deps.Channels {
		chans[c.Name()] = c
	}
	o := b.Delivery
	if o.Owner == "" {
		o.Owner = b.Owner
	}
	if o.Now == nil {
		o.Now = s.deps.Now
	}
	if o.Logger == nil {
		o.Logger = s.deps.Logger
	}
	s.deliverer = NewDeliverer(s.deps.Store.Approvals(), chans, o)
	s.kickFn = s.deliverer.Kick
	s.deliverer.Start()
	if b.Sweep <= 0 {
		b.Sweep = time.Second
	}
	s.sweeper = s.startSweeper(b.Sweep)
}

// Close stops the background work (sends in flight finish or are left to their lease).
func (s *Service) Close() error {
	if s.sweeper != nil {
		s.sweeper.stop()
	}
	if s.deliverer != nil {
		s.deliverer.Stop()
	}
	return nil
}
