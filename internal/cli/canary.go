package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	"github.com/decision-fabric/fabric/internal/replay"
)

// canary runs `fabric canary replay ...`.
func canary(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "replay" {
		return errors.New("usage: fabric canary replay [flags] (-h for the flags)")
	}
	return canaryReplay(ctx, args[1:], stdout, stderr)
}

// maxReplayResponse bounds the sim-canary's answer read by the command.
const maxReplayResponse = 16 << 20

// canaryReplay asks the sim-canary to replay past decisions under a candidate policy
// (and region set) and prints its table, or its JSON with -json:
//
//	fabric canary replay -url http://localhost:9207 -policy FILE -from 2026-12-01T00:00:00Z -to 2026-12-02T00:00:00Z [-token $TOKEN]
//	fabric canary replay -id ID [-id ID ...] [-region eu-west=2 -region us-east] [-json]
func canaryReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("canary replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://localhost:9207", "the sim-canary's REST address")
	policyFile := fs.String("policy", "", "the candidate decision policy (YAML, the format of policies/*.yaml)")
	from := fs.String("from", "", "start of the creation window (RFC 3339, inclusive)")
	to := fs.String("to", "", "end of the creation window (RFC 3339, exclusive; default now)")
	var ids, regions listFlag
	fs.Var(&ids, "id", "a proposal to replay (repeatable; instead of -from/-to)")
	fs.Var(&regions, "region", "a region of the candidate region set, NAME or NAME=WEIGHT (repeatable)")
	token := fs.String("token", os.Getenv("TOKEN"), "bearer token with the auditor or admin role (default $TOKEN)")
	asJSON := fs.Bool("json", false, "print the JSON answer instead of the table")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the sim-canary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req := &canaryv1.ReplayRequest{ProposalIds: ids}
	if *from != "" || *to != "" {
		if *from == "" {
			return errors.New("-from is required with -to")
		}
		f, err := time.Parse(time.RFC3339, *from)
		if err != nil {
			return fmt.Errorf("-from: %w", err)
		}
		t := time.Now()
		if *to != "" {
			if t, err = time.Parse(time.RFC3339, *to); err != nil {
				return fmt.Errorf("-to: %w", err)
			}
		}
		req.From, req.To = timestamppb.New(f), timestamppb.New(t)
	}
	if *policyFile != "" {
		raw, err := os.ReadFile(*policyFile)
		if err != nil {
			return err
		}
		req.CandidatePolicy = string(raw)
	}
	for _, r := range regions {
		name, weight, hasWeight := strings.Cut(r, "=")
		reg := &canaryv1.ReplayRegion{Region: name}
		if hasWeight {
			w, err := strconv.ParseInt(weight, 10, 64)
			if err != nil {
				return fmt.Errorf("-region %s: weight: %w", r, err)
			}
			reg.Weight = w
		}
		req.CandidateRegions = append(req.CandidateRegions, reg)
	}
	// The sim-canary checks everything; checking here first answers sooner and offline.
	if _, _, err := replay.Parse(req); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "rpc error: "))
	}
	body, err := protojson.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*base, "/")+"/canary/replay", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	if *token != "" {
		hr.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxReplayResponse+1))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the sim-canary answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(out)))
	}
	if *asJSON {
		_, err = stdout.Write(out)
		return err
	}
	var rr canaryv1.ReplayResponse
	if err := protojson.Unmarshal(out, &rr); err != nil {
		return fmt.Errorf("not a replay answer: %w", err)
	}
	fmt.Fprint(stdout, rr.GetTable())
	fmt.Fprintf(stdout, "%d of %d decisions would change", rr.GetChanged(), len(rr.GetResults()))
	if rr.GetTruncated() {
		fmt.Fprintf(stdout, " (the window holds more than %d: narrow it)", replay.MaxProposals)
	}
	fmt.Fprintln(stdout)
	return nil
}
