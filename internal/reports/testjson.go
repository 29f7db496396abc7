package reports

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// Outcome of one test in a run.
type Outcome string

const (
	Pass   Outcome = "PASS"
	Fail   Outcome = "FAIL"
	Skip   Outcome = "SKIP"
	NotRun Outcome = "NOT RUN"
	// Listed: `go test -list` found the test; it was not run (the CI check of the
	// generator lists the cited tests, which the same CI run executes anyway).
	Listed Outcome = "LISTED"
)

// Result is one test's end.
type Result struct {
	Package string
	Test    string
	Outcome Outcome
	Elapsed float64
}

// Run is what one or more `go test -json` invocations reported.
type Run struct {
	// Results by package, then test name (subtests included, "Parent/sub").
	Results map[string]map[string]Result
	// PackageFailures are packages that failed outside any test (build errors, a
	// failing TestMain, a panic).
	PackageFailures []string
	// Text is the human-readable output (what `go test -v` prints), in order.
	Text strings.Builder
	// output keeps each test's lines, for excerpts of failures.
	output map[string][]string
}

// NewRun is an empty run.
func NewRun() *Run {
	return &Run{Results: map[string]map[string]Result{}, output: map[string][]string{}}
}

// Add reads test2json events from r into the run.
func (run *Run) Add(r io.Reader) error { return run.read(r, run.add) }

// read calls handle with each test2json event of r; lines that are not JSON (the go
// command's own messages, such as build failures) are kept in Text.
func (run *Run) read(r io.Reader, handle func(event)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			run.Text.Write(line)
			run.Text.WriteByte('\n')
			continue
		}
		handle(ev)
	}
	return sc.Err()
}

func (run *Run) add(ev event) {
	if ev.Output != "" {
		run.Text.WriteString(ev.Output)
		if ev.Test != "" {
			k := ev.Package + "\x00" + ev.Test
			if lines := run.output[k]; len(lines) < 400 {
				run.output[k] = append(lines, strings.TrimRight(ev.Output, "\n"))
			}
		}
	}
	var o Outcome
	switch ev.Action {
	case "pass":
		o = Pass
	case "fail":
		o = Fail
	case "skip":
		o = Skip
	default:
		return
	}
	if ev.Test == "" {
		if o == Fail {
			run.PackageFailures = append(run.PackageFailures, ev.Package)
		}
		return
	}
	if run.Results[ev.Package] == nil {
		run.Results[ev.Package] = map[string]Result{}
	}
	run.Results[ev.Package][ev.Test] = Result{Package: ev.Package, Test: ev.Test, Outcome: o, Elapsed: ev.Elapsed}
}

// AddList reads the events of `go test -json -list REGEXP` into the run: each test
// the listing names is recorded as Listed.
func (run *Run) AddList(r io.Reader) error {
	return run.read(r, func(ev event) {
		if ev.Action == "fail" && ev.Test == "" {
			run.PackageFailures = append(run.PackageFailures, ev.Package)
		}
		if ev.Action != "output" || ev.Test != "" {
			return
		}
		run.Text.WriteString(ev.Output)
		name := strings.TrimSpace(ev.Output)
		if strings.HasPrefix(name, "Test") && !strings.ContainsAny(name, " \t/") {
			if run.Results[ev.Package] == nil {
				run.Results[ev.Package] = map[string]Result{}
			}
			run.Results[ev.Package][name] = Result{Package: ev.Package, Test: name, Outcome: Listed}
		}
	})
}

// Counts are a run's tests by outcome.
type Counts struct {
	Passed, Failed, Skipped int
	// Top counts only top-level tests; the fields above count subtests too.
	TopPassed, TopFailed, TopSkipped int
	Listed                           int
	Packages                         int
	PackageFailures                  int
}

// Counts counts the run's results.
func (run *Run) Counts() Counts {
	c := Counts{Packages: len(run.Results), PackageFailures: len(run.PackageFailures)}
	for _, tests := range run.Results {
		for name, r := range tests {
			top := !strings.Contains(name, "/")
			switch r.Outcome {
			case Pass:
				c.Passed++
				if top {
					c.TopPassed++
				}
			case Fail:
				c.Failed++
				if top {
					c.TopFailed++
				}
			case Skip:
				c.Skipped++
				if top {
					c.TopSkipped++
				}
			case Listed:
				c.Listed++
			}
		}
	}
	return c
}

// Outcome of a top-level test in the package whose import path ends with ref.Dir.
func (run *Run) Outcome(module string, ref TestRef) Outcome {
	if r, ok := run.Results[module+"/"+ref.Dir][ref.Name]; ok {
		return r.Outcome
	}
	return NotRun
}

// Failures are the failed tests, sorted ("package Test/sub").
func (run *Run) Failures() []string {
	var out []string
	for pkg, tests := range run.Results {
		for name, r := range tests {
			if r.Outcome == Fail {
				out = append(out, pkg+" "+name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Excerpt is the last n lines a test printed (empty if none).
func (run *Run) Excerpt(pkg, test string, n int) []string {
	lines := run.output[pkg+"\x00"+test]
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// Slowest are the n slowest top-level tests, as "name (1.2 s)".
func (run *Run) Slowest(n int) []string {
	var all []Result
	for _, tests := range run.Results {
		for name, r := range tests {
			if !strings.Contains(name, "/") {
				all = append(all, r)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Elapsed > all[j].Elapsed })
	if len(all) > n {
		all = all[:n]
	}
	out := make([]string, len(all))
	for i, r := range all {
		out[i] = fmt.Sprintf("%s (%.1f s, %s)", r.Test, r.Elapsed, r.Outcome)
	}
	return out
}
