package composer

import (
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/model"
	"github.com/decision-fabric/fabric/internal/redact"
)

// How a template was chosen (ComposeResponse.selected_by).
const (
	SelectedByTemplateID = "template_id"
	SelectedByKeywords   = "keywords"
	SelectedByModel      = "model"
)

// Selection is the outcome of template selection.
type Selection struct {
	Template *Template
	// By is SelectedByTemplateID, SelectedByKeywords or SelectedByModel.
	By string
	// Matched are the keywords of Template found in the context (SelectedByKeywords).
	Matched []string
}

// rePlaceholder matches redaction placeholders, which are not words of the context
// ("<REDACTED:card>" must not match a keyword "card").
var rePlaceholder = regexp.MustCompile(`<REDACTED(?::[a-z_0-9]+)?>`)

// words splits text into lower-case words of ASCII letters and digits; everything
// else separates words ("CPU-bound" is "cpu bound"). Redaction placeholders are skipped.
func words(s string) []string {
	if strings.Contains(s, "<REDACTED") {
		s = rePlaceholder.ReplaceAllString(s, " ")
	}
	return strings.FieldsFunc(strings.ToLower(s), func(c rune) bool {
		return (c < 'a' || c > 'z') && (c < '0' || c > '9')
	})
}

// containsPhrase reports whether phrase occurs in ws as consecutive words.
func containsPhrase(ws, phrase []string) bool {
	n := len(phrase)
	for i := 0; i+n <= len(ws); i++ {
		if ws[i] != phrase[0] {
			continue
		}
		match := true
		for j := 1; j < n; j++ {
			if ws[i+j] != phrase[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// keywordScore returns the template's score for the context's words: the number of
// words of every keyword that occurs in them (a two-word phrase scores 2), and the
// keywords that occurred.
func (t *Template) keywordScore(ws []string) (int, []string) {
	score := 0
	var matched []string
	for i, kw := range t.keywordWords {
		if containsPhrase(ws, kw) {
			score += len(kw)
			matched = append(matched, t.Keywords[i])
		}
	}
	return score, matched
}

// agreement measures how well t fits a model suggestion: -1 when the suggestion's
// action is not t's, otherwise the number of suggested parameters t has a default for
// with the same JSON type (and, for numbers, the same sign: a suggestion to remove a
// replica agrees with scale-in, not scale-out).
func (t *Template) agreement(s *model.Suggestion, params map[string]any) int {
	if s == nil || s.Action != t.Action {
		return -1
	}
	n := 0
	for k, v := range params {
		def, ok := t.Parameters[k]
		if !ok || kind(def) != kind(v) {
			continue
		}
		if a, ok := def.(float64); ok && sign(a) != sign(v.(float64)) {
			continue
		}
		n++
	}
	return n
}

func sign(f float64) int {
	switch {
	case f > 0:
		return 1
	case f < 0:
		return -1
	}
	return 0
}

// Select chooses the template for a request:
//
//  1. the template named by id, if id is not empty (an unknown id is INVALID_ARGUMENT
//     listing the valid ones);
//  2. otherwise the template whose keywords score highest in the context (see
//     keywordScore); a tie goes to the tied template that agrees best with the model's
//     suggestion, then to the one listed first;
//  3. otherwise the template that produces the model's suggested action, agreeing best
//     with its parameters, then listed first;
//  4. otherwise INVALID_ARGUMENT explaining that nothing matched, or UNAVAILABLE when
//     the model could not be asked (suggestion nil), since asking again may help.
//
// suggestion may be nil (the model was unavailable); params are its parameters as
// JSON-like data. Select is deterministic.
func (ts *Templates) Select(id, context string, suggestion *model.Suggestion, params map[string]any) (Selection, error) {
	if id != "" {
		t, ok := ts.Get(id)
		if !ok {
			return Selection{}, status.Errorf(codes.InvalidArgument, "template_id %q: unknown template; valid: %s", redact.Echo(id), strings.Join(ts.IDs(), ", "))
		}
		return Selection{Template: t, By: SelectedByTemplateID}, nil
	}

	ws := words(context)
	var (
		best         *Template
		bestScore    int
		bestAgree    int
		bestMatched  []string
		modelPick    *Template
		modelPickAgr = -1
	)
	for _, t := range ts.list {
		agree := t.agreement(suggestion, params)
		if agree > modelPickAgr {
			modelPick, modelPickAgr = t, agree
		}
		score, matched := t.keywordScore(ws)
		if score == 0 {
			continue
		}
		if best == nil || score > bestScore || (score == bestScore && agree > bestAgree) {
			best, bestScore, bestAgree, bestMatched = t, score, agree, matched
		}
	}
	if best != nil {
		return Selection{Template: best, By: SelectedByKeywords, Matched: bestMatched}, nil
	}
	if modelPick != nil {
		return Selection{Template: modelPick, By: SelectedByModel}, nil
	}
	if suggestion == nil {
		return Selection{}, status.Errorf(codes.Unavailable,
			"no template's keywords appear in the context and the model is unavailable to suggest one; retry, or name a template_id (valid: %s)",
			strings.Join(ts.IDs(), ", "))
	}
	return Selection{}, status.Errorf(codes.InvalidArgument,
		"no template matches the context: none of its words is a template keyword (%s) and the model suggested the action %q, which no template produces; rephrase, or name a template_id (valid: %s)",
		ts.keywordSummary(), redact.Echo(suggestion.Action), strings.Join(ts.IDs(), ", "))
}

// keywordSummary lists each template's keywords, for error messages.
func (ts *Templates) keywordSummary() string {
	parts := make([]string, 0, len(ts.list))
	for _, t := range ts.list {
		parts = append(parts, fmt.Sprintf("%s: %s", t.ID, strings.Join(t.Keywords, ", ")))
	}
	return strings.Join(parts, "; ")
}
