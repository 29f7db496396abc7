package scorer

// example is the scenario of the issue: 7 of 8 similar changes succeeded, regions agreed
// 4 of 5, a healthy target, +2 replicas in two regions.
func example() Inputs {
	return Inputs{
		ProposalID: "01J00000000000000000000000",
		Action:     "scale",
		Target:     "serviceX",
		Impact:     LevelMedium,
		Votes:      VoteInput{Found: true, Accepted: 4, Total: 5},
		History:    HistoryInput{Successes: 7, Failures: 1, Scope: ScopeActionTarget},
		Metrics:    MetricsInput{Available: true, Source: "prometheus", ErrorRate: 0.004, CPU: 0.62, P99LatencyMS: 180, Samples: 1234},
		Model:      ModelInput{Available: true, Provider: "simulated", Model: "simulated-v1", Probability: 0.86},
		Regions: []RegionInput{
			{Region: "eu-west", Replicas: 4, CostPerReplicaHour: 0.15, ReplicasDelta: 2},
			{Region: "us-east", Replicas: 6, CostPerReplicaHour: 0.15, ReplicasDelta: 2},
		},
	}
}
