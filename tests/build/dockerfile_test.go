// Package build checks the repository's build files: the one Dockerfile builds every
// service. Docker is not needed: the test reads the Dockerfile, substitutes each
// service for its SERVICE build argument, and builds the path it names with the same
// go build flags.
package build

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/fabric"
)

const repoRoot = "../.."

// dockerStage is one FROM ... stage of a Dockerfile: its base image and its
// instructions (keyword upper-cased, continuation lines joined).
type dockerStage struct {
	from  string
	instr [][2]string // {KEYWORD, arguments}
}

func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var stages []dockerStage
	var line strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if line.Len() == 0 && (text == "" || strings.HasPrefix(text, "#")) {
			continue
		}
		if strings.HasSuffix(text, "\\") {
			line.WriteString(strings.TrimSuffix(text, "\\") + " ")
			continue
		}
		line.WriteString(text)
		full := line.String()
		line.Reset()
		kw, args, _ := strings.Cut(full, " ")
		kw = strings.ToUpper(kw)
		args = strings.TrimSpace(args)
		if kw == "FROM" {
			stages = append(stages, dockerStage{from: args})
			continue
		}
		require.NotEmpty(t, stages, "%s: %q before the first FROM", path, full)
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, [2]string{kw, args})
	}
	require.NoError(t, sc.Err())
	require.Empty(t, line.String(), "a continuation line ends the file")
	return stages
}

func (s dockerStage) args(kw string) []string {
	var out []string
	for _, in := range s.instr {
		if in[0] == kw {
			out = append(out, in[1])
		}
	}
	return out
}

// serviceDirs lists the folders under services/.
func serviceDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repoRoot, "services"))
	require.NoError(t, err)
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

var reGoBuild = regexp.MustCompile(`CGO_ENABLED=0 go build (.*) -o /out/service "?(\./services/\$\{SERVICE\})"?$`)

// The Dockerfile at the root is the only one, takes SERVICE in both stages, builds
// ./services/${SERVICE} into a distroless static image that runs as non-root with that
// service's config.example.yaml; every folder under services/ is a service of the
// fabric, and each builds with the Dockerfile's go build command.
func TestDockerfileBuildsEveryService(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	require.Len(t, stages, 2, "a build stage and a runtime stage")
	build, run := stages[0], stages[1]
	require.Contains(t, build.args("ARG"), "SERVICE", "the build stage takes SERVICE")
	require.Contains(t, run.args("ARG"), "SERVICE", "the runtime stage re-declares SERVICE (an ARG ends with its stage)")
	require.Regexp(t, `^gcr\.io/distroless/static[-\w]*:nonroot$`, run.from)
	require.Equal(t, []string{"nonroot:nonroot"}, run.args("USER"))
	require.Contains(t, run.args("COPY"), "services/${SERVICE}/config.example.yaml /etc/decision-fabric/config.yaml")
	require.Contains(t, run.args("COPY"), "--from=build /out/service /service")
	require.Equal(t, []string{`["/service", "-config", "/etc/decision-fabric/config.yaml"]`}, run.args("ENTRYPOINT"))

	var flags string
	for _, r := range build.args("RUN") {
		if m := reGoBuild.FindStringSubmatch(r); m != nil {
			flags = m[1]
		}
	}
	require.NotEmpty(t, flags, "the build stage runs CGO_ENABLED=0 go build ... -o /out/service ./services/${SERVICE}")

	// No other Dockerfile is left to drift from this one.
	var others []string
	require.NoError(t, filepath.WalkDir(repoRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".tools" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), "Dockerfile") && path != filepath.Join(repoRoot, "Dockerfile") {
			others = append(others, path)
		}
		return nil
	}))
	require.Empty(t, others, "one Dockerfile with a SERVICE build argument")

	dirs := serviceDirs(t)
	names := fabric.Names()
	slices.Sort(names)
	require.Equal(t, names, dirs, "every folder under services/ is a fabric service, and every service has a folder")

	var pkgs []string
	for _, name := range dirs {
		pkg := strings.ReplaceAll("./services/${SERVICE}", "${SERVICE}", name)
		_, err := os.Stat(filepath.Join(repoRoot, "services", name, "config.example.yaml"))
		require.NoError(t, err, "%s: the image copies its config.example.yaml", name)
		pkgs = append(pkgs, pkg)
	}
	// Each path is a main package, and with cgo off, as in the image, every package it
	// imports still has Go files to build (go list says both, cheaply).
	require.ElementsMatch(t, []string{"-trimpath", "-ldflags=-s -w"}, shellWords(flags))
	list := exec.Command("go", append([]string{"list", "-e", "-deps", "-f", "{{if .Error}}ERROR {{.ImportPath}}: {{.Error}}{{end}}{{if .DepsErrors}}ERROR {{.ImportPath}}: {{.DepsErrors}}{{end}}{{if eq .Name \"main\"}}{{.ImportPath}}{{end}}"}, pkgs...)...)
	list.Dir = repoRoot
	list.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := list.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotContains(t, string(out), "ERROR")
	var mains []string
	for _, l := range strings.Fields(string(out)) {
		mains = append(mains, "./"+strings.TrimPrefix(l, "github.com/decision-fabric/fabric/"))
	}
	require.ElementsMatch(t, pkgs, mains, "every ./services/${SERVICE} is a main package")
	if testing.Short() {
		t.Skip("-short: not compiling the seven services")
	}
	// They compile (one go build, so shared packages compile once). The Dockerfile's
	// flags and CGO_ENABLED=0 only strip paths and symbols and pick the Go files checked
	// above; they are left out here so the build cache of the other tests serves this
	// one (with them, every package compiles afresh: minutes on two cores).
	cmd := exec.Command("go", append([]string{"build"}, pkgs...)...)
	cmd.Dir = repoRoot
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// shellWords splits a shell word list the way the Dockerfile's RUN shell does for
// the simple quoting it uses: double quotes group words and are removed.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}
