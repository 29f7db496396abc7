package negotiator

import "context"

// SweepOrphans runs one background sweep of orphaned negotiations (tests).
func (s *Service) SweepOrphans(ctx context.Context) { s.sweepOrphans(ctx) }
