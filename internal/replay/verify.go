package replay

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/canonical"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/world"
)

// Evidence is what was read about one decision besides its record.
type Evidence struct {
	// Export is the auditor's decision export; nil with ExportErr set when it could
	// not be read.
	Export    *auditorv1.ExportDecisionResponse
	ExportErr error
	// Negotiation is the negotiator's record, read for a decision without a consensus
	// bundle: its quorum certificate and final manifest; nil when there is none.
	Negotiation *negotiatorv1.Negotiation
	// NegotiationErr is why the negotiator's record could not be read.
	NegotiationErr error
}

// Verify checks what was read about a decision and returns the record to re-decide:
//
//   - the pre-state snapshot hashes to the digest stored with it and recorded on the
//     proposal, and the audit trail records it ("snapshot.recorded", kind pre);
//   - the decision export verifies offline (bundle.VerifyExport with keys: manifest
//     signature, consensus bundle and its quorum certificate, signed approvals, every
//     audit entry against the signed checkpoint, the status) and is about the same
//     decision as the record (manifest digest, status, agreed manifest);
//   - for a decision without a consensus bundle, the negotiator's quorum certificate
//     verifies against the region key registry and is about the manifest.
//
// What verified is used: the export's manifest and signed approvals replace the
// record's, the votes are the verified certificate's. The first failure is reported in
// Record.VerifyError and the decision is re-decided from the record as read (without
// votes whose certificate did not verify).
func Verify(dr *coordinatorv1.DecisionRecord, ev Evidence, keys bundle.Keys) Record {
	p := proto.CloneOf(dr.GetProposal())
	rec := Record{Proposal: p, PreState: world.Snapshot{JSON: dr.GetPreState(), SHA256: dr.GetPreStateSha256()}}
	var problems []string
	note := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	switch sum := canonical.SHA256Hex(dr.GetPreState()); {
	case len(dr.GetPreState()) == 0:
		note("no pre-state snapshot is stored")
	case sum != dr.GetPreStateSha256() || sum != p.GetPreStateSha256():
		note("pre-state: the stored snapshot hashes to %s, not its recorded digest %s", short(sum), short(p.GetPreStateSha256()))
	}

	x := ev.Export
	keys.AllowNoConsensus = true
	switch {
	case ev.ExportErr != nil:
		note("decision export: %v", ev.ExportErr)
	case x == nil:
		note("decision export: none")
	default:
		if _, err := bundle.VerifyExport(x, keys); err != nil {
			note("decision export: %v", err)
			break
		}
		if x.GetManifestSha256() != p.GetManifestSha256() || x.GetStatus() != StatusName(p.GetStatus()) {
			note("the decision record (manifest %s, %s) is not the audited decision (manifest %s, %s)",
				short(p.GetManifestSha256()), StatusName(p.GetStatus()), short(x.GetManifestSha256()), x.GetStatus())
			break
		}
		// The verified parts replace the record's.
		p.Manifest, p.Approvals = x.GetManifest(), x.GetSignedApprovals()
		if !preRecorded(x, p.GetPreStateSha256()) {
			note("audit trail: no snapshot.recorded entry records the pre-state %s", short(p.GetPreStateSha256()))
		}
		if b := x.GetConsensusBundle(); b != nil {
			c, err := bundle.Verify(b, bundle.Trust{Keys: keys.Cosign, Regions: keys.Regions, RequireManifestSignature: !keys.AllowUnsignedManifest},
				bundle.Expect{TenantID: x.GetTenantId(), ProposalID: x.GetProposalId(), ManifestSHA256: x.GetManifestSha256()})
			if err != nil { // VerifyExport checked it: unreachable unless keys changed
				note("consensus bundle: %v", err)
				break
			}
			if p.GetAgreedManifest() != nil {
				if _, sum, err := manifestpkg.Canonical(p.GetAgreedManifest()); err != nil || sum != c.AgreedManifestSHA256 {
					note("the recorded agreed manifest is not the one the consensus bundle seals (%s)", short(c.AgreedManifestSHA256))
					break
				}
			}
			cert := c.QuorumCertificate
			rec.Votes = &cert
		}
	}
	if qc := ev.Negotiation.GetQuorumCertificate(); rec.Votes == nil && qc != nil {
		cert := quorum.FromProto(qc)
		switch err := quorum.Verify(cert, keys.Regions); {
		case err != nil:
			note("quorum certificate: %v", err)
		case cert.ProposalDigest != p.GetManifestSha256():
			note("quorum certificate: about manifest %s, not this decision's %s", short(cert.ProposalDigest), short(p.GetManifestSha256()))
		default:
			rec.Votes = &cert
			if cert.Outcome == quorum.OutcomeAgreed && p.GetAgreedManifest() == nil {
				// The regions agreed but no bundle was sealed (the policy refused the
				// agreed change): the change they agreed on is the negotiator's.
				rec.AgreedManifest = ev.Negotiation.GetFinalManifest()
			}
		}
	}
	if ev.NegotiationErr != nil && rec.Votes == nil {
		note("negotiation: %v", ev.NegotiationErr)
	}
	if len(problems) > 0 {
		rec.VerifyError = problems[0]
		for _, more := range problems[1:] {
			rec.VerifyError += "; " + more
		}
	}
	return rec
}

// preRecorded reports whether a verified trail records the pre-state digest.
func preRecorded(x *auditorv1.ExportDecisionResponse, sha string) bool {
	for _, e := range x.GetEntries() {
		if e.GetEvent() != auditlog.EventSnapshotRecorded {
			continue
		}
		var s struct {
			Kind   string `json:"kind"`
			SHA256 string `json:"sha256"`
		}
		if json.Unmarshal([]byte(e.GetSummary()), &s) == nil && s.Kind == "pre" && s.SHA256 == sha {
			return true
		}
	}
	return false
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
