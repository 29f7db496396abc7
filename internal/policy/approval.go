package policy

import (
	"fmt"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/decision-fabric/fabric/internal/approval"
)

// MaxApprovalExpiry bounds approval.expires_after.
const MaxApprovalExpiry = 7 * 24 * time.Hour

// ApprovalRules returns the approval rules of tenant's policy (the defaults
// for a tenant without a section): its `approval:` block, or without one the
// default rule, whose approve threshold is the policy's approvals_required
// (at least 2 for critical impact; see package approval). A tenant's block
// replaces the defaults' block as a whole.
func (e *Engine) ApprovalRules(tenant string) approval.Rules {
	p := e.policyFor(tenant)
	r := p.approval
	r.Sets = cloneSets(r.Sets)
	r.DefaultApprove = p.approvals
	return r
}

func cloneSets(sets []approval.Set) []approval.Set {
	if sets == nil {
		return nil
	}
	out := make([]approval.Set, len(sets))
	for i, s := range sets {
		out[i].Rules = make([]approval.Rule, len(s.Rules))
		for j, r := range s.Rules {
			r.Filter.Roles = slices.Clone(r.Filter.Roles)
			r.Filter.Groups = slices.Clone(r.Filter.Groups)
			out[i].Rules[j] = r
		}
	}
	return out
}

// approvalBlock parses `approval: {sets, expires_after, reminder_before}`.
func (p *parser) approvalBlock(n *yaml.Node, path string) (approval.Rules, error) {
	var r approval.Rules
	names := map[string]bool{}
	err := p.mapping(n, path, false, func(key string, k, v *yaml.Node) error {
		kp := join(path, key)
		if isNull(v) {
			return p.errf(v, kp, "has no value")
		}
		switch key {
		case "sets":
			if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
				return p.errf(v, kp, "must list at least one set (leave `sets` out for the default rule)")
			}
			return p.sequence(v, kp, func(i int, sn *yaml.Node) error {
				sp := fmt.Sprintf("%s[%d]", kp, i)
				if i >= approval.MaxSets {
					return p.errf(sn, kp, "more than %d sets", approval.MaxSets)
				}
				set, err := p.approvalSet(sn, sp, names)
				if err != nil {
					return err
				}
				r.Sets = append(r.Sets, set)
				return nil
			})
		case "expires_after", "reminder_before":
			d, err := p.duration(v, kp)
			if err != nil {
				return err
			}
			if d <= 0 || d > MaxApprovalExpiry {
				return p.errf(v, kp, "must be a duration between 1s and %s, not %s", MaxApprovalExpiry, v.Value)
			}
			if key == "expires_after" {
				r.ExpiresAfter = d
			} else {
				r.ReminderBefore = d
			}
		default:
			return p.errf(k, kp, "unknown key (want sets, expires_after, reminder_before)")
		}
		return nil
	})
	if err != nil {
		return approval.Rules{}, err
	}
	if r.ExpiresAfter > 0 && r.ReminderBefore >= r.ExpiresAfter {
		return approval.Rules{}, p.errf(n, join(path, "reminder_before"), "%s must be shorter than expires_after %s", r.ReminderBefore, r.ExpiresAfter)
	}
	if err := r.Validate(); err != nil { // belt and braces: the parser checks each field above
		return approval.Rules{}, p.errf(n, path, "%v", err)
	}
	return r, nil
}

func (p *parser) approvalSet(n *yaml.Node, path string, names map[string]bool) (approval.Set, error) {
	var set approval.Set
	var rulesNode *yaml.Node
	err := p.mapping(n, path, false, func(key string, k, v *yaml.Node) error {
		if key != "rules" {
			return p.errf(k, join(path, key), "unknown key (want rules)")
		}
		rulesNode = v
		return nil
	})
	if err != nil {
		return set, err
	}
	rp := join(path, "rules")
	if rulesNode == nil {
		return set, p.errf(n, rp, "missing")
	}
	if rulesNode.Kind == yaml.SequenceNode && (len(rulesNode.Content) == 0 || len(rulesNode.Content) > approval.MaxRulesPerSet) {
		return set, p.errf(rulesNode, rp, "must list 1-%d rules, not %d", approval.MaxRulesPerSet, len(rulesNode.Content))
	}
	err = p.sequence(rulesNode, rp, func(i int, rn *yaml.Node) error {
		r, err := p.approvalRule(rn, fmt.Sprintf("%s[%d]", rp, i), names)
		if err != nil {
			return err
		}
		set.Rules = append(set.Rules, r)
		return nil
	})
	return set, err
}

func (p *parser) approvalRule(n *yaml.Node, path string, names map[string]bool) (approval.Rule, error) {
	var (
		r                  approval.Rule
		hasApprove         bool
		hasFilter, hasName bool
	)
	err := p.mapping(n, path, false, func(key string, k, v *yaml.Node) error {
		kp := join(path, key)
		switch key {
		case "name":
			s, err := p.name(v, kp, "rule name")
			if err != nil {
				return err
			}
			if names[s] {
				return p.errf(v, kp, "duplicate rule name %q (names are unique across the approval block)", s)
			}
			names[s] = true
			r.Name, hasName = s, true
		case "approve", "deny":
			x, err := p.integer(v, kp)
			if err != nil {
				return err
			}
			if x < 1 || x > approval.MaxThreshold {
				return p.errf(v, kp, "must be between 1 and %d, not %d", approval.MaxThreshold, x)
			}
			if key == "approve" {
				r.Approve, hasApprove = int(x), true
			} else {
				r.Deny = int(x)
			}
		case "filter":
			f, err := p.approvalFilter(v, kp)
			if err != nil {
				return err
			}
			r.Filter, hasFilter = f, true
		default:
			return p.errf(k, kp, "unknown key (want name, approve, deny, filter)")
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	for _, m := range []struct {
		ok  bool
		key string
	}{{hasName, "name"}, {hasApprove, "approve"}, {hasFilter, "filter"}} {
		if !m.ok {
			return r, p.errf(n, join(path, m.key), "missing")
		}
	}
	return r, nil
}

func (p *parser) approvalFilter(n *yaml.Node, path string) (approval.Filter, error) {
	var f approval.Filter
	err := p.mapping(n, path, false, func(key string, k, v *yaml.Node) error {
		kp := join(path, key)
		var dst *[]string
		switch key {
		case "roles":
			dst = &f.Roles
		case "groups":
			dst = &f.Groups
		default:
			return p.errf(k, kp, "unknown key (want roles, groups)")
		}
		err := p.sequence(v, kp, func(i int, vn *yaml.Node) error {
			ip := fmt.Sprintf("%s[%d]", kp, i)
			s, err := p.name(vn, ip, key[:len(key)-1])
			if err != nil {
				return err
			}
			if slices.Contains(*dst, s) {
				return p.errf(vn, ip, "duplicate %q", s)
			}
			*dst = append(*dst, s)
			return nil
		})
		if err != nil {
			return err
		}
		if len(*dst) == 0 {
			return p.errf(v, kp, "must not be empty (leave it out instead)")
		}
		return nil
	})
	if err != nil {
		return f, err
	}
	if len(f.Roles) == 0 && len(f.Groups) == 0 {
		return f, p.errf(n, path, "must name at least one role or group (an empty filter matches nobody)")
	}
	return f, nil
}

func (p *parser) duration(n *yaml.Node, path string) (time.Duration, error) {
	s, err := p.str(n, path)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, p.errf(n, path, "must be a duration such as 30m or 2h, not %q", s)
	}
	return d, nil
}
