-- +goose Up
-- The sim-canary leases the rollouts it drives (services/sim-canary/canary/rollout.go):
-- lease_owner names the sim-canary process and lease_until ends the lease (NULL: never
-- leased). Only the holder drives a RUNNING run; a run whose lease has ended (its
-- sim-canary stopped) is taken over by any other, so two replicas never drive one run.
ALTER TABLE canary_runs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE canary_runs ADD COLUMN lease_until TIMESTAMPTZ;

-- +goose Down
ALTER TABLE canary_runs DROP COLUMN lease_until;
ALTER TABLE canary_runs DROP COLUMN lease_owner;
