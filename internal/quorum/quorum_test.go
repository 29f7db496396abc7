package quorum_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/quorum"
)

type region struct {
	name   string
	weight int64
	key    ed25519.PrivateKey
	pem    string
	id     string
}

func newRegion(t testing.TB, name string, weight int64, seed byte) region {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	key := ed25519.NewKeyFromSeed(s)
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	require.NoError(t, err)
	return region{name: name, weight: weight, key: key,
		pem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), id: canonical.SHA256Hex(der)}
}

const digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// build returns a certificate for round 1 in which regions[i] votes verdicts[i]
// ("" = no vote), and the registry of the regions' keys.
func build(t testing.TB, rule, outcome string, regions []region, verdicts []string) (quorum.Certificate, map[string][]byte) {
	t.Helper()
	c := quorum.Certificate{ProposalDigest: digest, NegotiationID: "01J0000000000000000000000A", Round: 1, Rule: rule, Outcome: outcome}
	trusted := map[string][]byte{}
	for i, r := range regions {
		c.RegionKeys = append(c.RegionKeys, quorum.RegionKey{Region: r.name, KeyID: r.id, PublicKeyPEM: r.pem, Weight: r.weight})
		trusted[r.name] = []byte(r.pem)
		if verdicts[i] == "" {
			continue
		}
		payload, err := quorum.VotePayload(digest, 1, r.name, verdicts[i])
		require.NoError(t, err)
		c.Votes = append(c.Votes, quorum.Vote{Region: r.name, Round: 1, Verdict: verdicts[i], KeyID: r.id,
			Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(r.key, payload))})
	}
	return c, trusted
}

func fiveRegions(t testing.TB) []region {
	return []region{
		newRegion(t, "eu-west", 3, 1), newRegion(t, "eu-central", 2, 2), newRegion(t, "us-east", 3, 3),
		newRegion(t, "us-west", 2, 4), newRegion(t, "ap-south", 1, 5),
	}
}

func TestVotePayload(t *testing.T) {
	got, err := quorum.VotePayload(digest, 2, "eu-west", "COUNTER")
	require.NoError(t, err)
	require.Equal(t, `{"proposal_digest":"`+digest+`","region":"eu-west","round":2,"verdict":"COUNTER"}`, string(got))
}

func TestVerifyOutcomes(t *testing.T) {
	const A, R, C, X = "ACCEPT", "REJECT", "COUNTER", "ABSTAIN"
	for name, tc := range map[string]struct {
		rule     string
		verdicts []string
		want     string // "" = neither outcome verifies
	}{
		"majority 3 of 5":                {quorum.RuleMajority, []string{A, A, A, R, R}, quorum.OutcomeAgreed},
		"majority 2 of 5":                {quorum.RuleMajority, []string{A, A, R, R, C}, quorum.OutcomeRejected},
		"majority 2 of 5, 1 missing":     {quorum.RuleMajority, []string{A, A, R, R, ""}, ""},
		"majority 2 of 4 with abstain":   {quorum.RuleMajority, []string{A, A, R, R, X}, quorum.OutcomeRejected},
		"majority 2 of 3 with abstains":  {quorum.RuleMajority, []string{A, A, R, X, X}, quorum.OutcomeAgreed},
		"two thirds 4 of 6 equivalent":   {quorum.RuleTwoThirds, []string{A, A, R, X, X}, quorum.OutcomeAgreed},
		"two thirds 3 of 5":              {quorum.RuleTwoThirds, []string{A, A, A, R, C}, quorum.OutcomeRejected},
		"unanimous 4 of 4 with abstain":  {quorum.RuleUnanimous, []string{A, A, A, A, X}, quorum.OutcomeAgreed},
		"unanimous 4 of 5":               {quorum.RuleUnanimous, []string{A, A, A, A, R}, quorum.OutcomeRejected},
		"weighted 8 of 11":               {quorum.RuleWeighted, []string{A, R, A, A, R}, quorum.OutcomeAgreed},
		"weighted 5 of 11":               {quorum.RuleWeighted, []string{R, A, A, R, R}, quorum.OutcomeRejected},
		"every region abstains":          {quorum.RuleMajority, []string{X, X, X, X, X}, quorum.OutcomeRejected},
		"counters are not accepts":       {quorum.RuleMajority, []string{C, C, C, C, A}, quorum.OutcomeRejected},
		"quorum reached before the rest": {quorum.RuleMajority, []string{A, A, A, "", ""}, quorum.OutcomeAgreed},
	} {
		t.Run(name, func(t *testing.T) {
			for _, outcome := range []string{quorum.OutcomeAgreed, quorum.OutcomeRejected} {
				c, trusted := build(t, tc.rule, outcome, fiveRegions(t), tc.verdicts)
				err := quorum.Verify(c, trusted)
				if outcome == tc.want {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, quorum.ErrInvalid)
					require.Contains(t, err.Error(), "outcome "+outcome+" is not supported")
				}
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	rs := fiveRegions(t)
	votes := []string{"ACCEPT", "ACCEPT", "ACCEPT", "REJECT", "REJECT"}
	for name, tc := range map[string]struct {
		tamper func(c *quorum.Certificate, trusted map[string][]byte)
		want   string
	}{
		"bad digest":       {func(c *quorum.Certificate, _ map[string][]byte) { c.ProposalDigest = "ABC" }, "proposal_digest"},
		"round 0":          {func(c *quorum.Certificate, _ map[string][]byte) { c.Round = 0 }, "round 0"},
		"unknown rule":     {func(c *quorum.Certificate, _ map[string][]byte) { c.Rule = "plurality" }, `rule "plurality"`},
		"unknown outcome":  {func(c *quorum.Certificate, _ map[string][]byte) { c.Outcome = "EXPIRED" }, `outcome "EXPIRED"`},
		"no regions":       {func(c *quorum.Certificate, _ map[string][]byte) { c.RegionKeys = nil }, "region_keys: empty"},
		"duplicate region": {func(c *quorum.Certificate, _ map[string][]byte) { c.RegionKeys[1] = c.RegionKeys[0] }, `region "eu-west": listed twice`},
		"zero weight":      {func(c *quorum.Certificate, _ map[string][]byte) { c.RegionKeys[2].Weight = 0 }, `region "us-east": weight 0`},
		"garbage registry key": {func(_ *quorum.Certificate, trusted map[string][]byte) { trusted["us-west"] = []byte("nope") },
			`region "us-west": registry key`},
		"wrong key_id": {func(c *quorum.Certificate, _ map[string][]byte) { c.RegionKeys[0].KeyID = strings.Repeat("0", 64) },
			`region "eu-west": key_id`},
		"vote key_id": {func(c *quorum.Certificate, _ map[string][]byte) { c.Votes[3].KeyID = rs[0].id },
			`votes[3] (region "us-west"): key_id`},
		"unknown verdict": {func(c *quorum.Certificate, _ map[string][]byte) { c.Votes[1].Verdict = "MAYBE" },
			`votes[1] (region "eu-central"): verdict "MAYBE"`},
		"flipped verdict": {func(c *quorum.Certificate, _ map[string][]byte) { c.Votes[3].Verdict = "ACCEPT" },
			`votes[3] (region "us-west"): signature`},
		"signature not base64": {func(c *quorum.Certificate, _ map[string][]byte) { c.Votes[2].Signature = "!!" },
			`votes[2] (region "us-east"): signature`},
		"signature of another region": {func(c *quorum.Certificate, _ map[string][]byte) { c.Votes[2].Signature = c.Votes[0].Signature },
			`votes[2] (region "us-east"): signature`},
		"duplicate vote, different verdict": {func(c *quorum.Certificate, _ map[string][]byte) {
			c.Votes = append([]quorum.Vote{c.Votes[3]}, c.Votes...)
		}, `votes[4] (region "us-west"): duplicate vote`},
		"vote from another round": {func(c *quorum.Certificate, _ map[string][]byte) { c.Votes[4].Round = 2 },
			`votes[4] (region "ap-south"): round 2, the certificate is for round 1`},
	} {
		t.Run(name, func(t *testing.T) {
			c, trusted := build(t, quorum.RuleMajority, quorum.OutcomeAgreed, rs, votes)
			require.NoError(t, quorum.Verify(c, trusted))
			tc.tamper(&c, trusted)
			err := quorum.Verify(c, trusted)
			require.True(t, errors.Is(err, quorum.ErrInvalid), "%v", err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestCanonical(t *testing.T) {
	c, _ := build(t, quorum.RuleMajority, quorum.OutcomeAgreed, fiveRegions(t)[:1], []string{"ACCEPT"})
	b, err := c.Canonical()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), `{"negotiation_id":`), string(b))
	var back quorum.Certificate
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, c, back)
	empty, err := quorum.Certificate{}.Canonical()
	require.NoError(t, err)
	require.Contains(t, string(empty), `"votes":[]`)
}

func FuzzVerify(f *testing.F) {
	rs := fiveRegions(f)
	c, trusted := build(f, quorum.RuleWeighted, quorum.OutcomeAgreed, rs, []string{"ACCEPT", "REJECT", "ACCEPT", "ACCEPT", ""})
	valid, err := json.Marshal(c)
	if err != nil {
		f.Fatal(err)
	}
	if err := quorum.Verify(c, trusted); err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"proposal_digest":"` + digest + `","round":1,"rule":"weighted","outcome":"AGREED","region_keys":[{"region":"eu-west","weight":9223372036854775807}]}`))
	f.Add([]byte(`{"votes":[{"region":"eu-west","round":-1,"signature":"AAAA"}],"region_keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c quorum.Certificate
		if json.Unmarshal(data, &c) != nil {
			return
		}
		err := quorum.Verify(c, trusted)
		if err != nil && !errors.Is(err, quorum.ErrInvalid) {
			t.Fatalf("error does not wrap ErrInvalid: %v", err)
		}
		_, _ = c.Canonical()
	})
}
