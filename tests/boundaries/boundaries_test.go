// Package boundaries checks the architecture's two ownership rules on the source:
// a service never imports another service's implementation, and each service (and
// each shared package working on a service's behalf) calls only the store accessors
// of its own tables, as declared in internal/store.Owners and store.PackageOwners.
package boundaries

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store"
)

const module = "github.com/decision-fabric/fabric/"

// root is the module's root, from this package's folder.
var root = filepath.Join("..", "..")

// owndataOwner is the owner of the package in folder dir (slash-separated, relative
// to the root): the service for services/<name>/..., the declared owner for a shared
// package, "" otherwise.
func owndataOwner(dir string) string {
	if rest, ok := strings.CutPrefix(dir, "services/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		return name
	}
	for pkg, owner := range store.PackageOwners {
		if dir == pkg || strings.HasPrefix(dir, pkg+"/") {
			return owner
		}
	}
	return ""
}

// owndataViolations returns the rule breaks in one parsed file of folder dir.
func owndataViolations(fset *token.FileSet, dir string, f *ast.File, isTest bool) []string {
	var out []string
	owner := owndataOwner(dir)
	if strings.HasPrefix(dir, "services/") {
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			rest, ok := strings.CutPrefix(path, module+"services/")
			if !ok {
				continue
			}
			if other, _, _ := strings.Cut(rest, "/"); other != owner {
				out = append(out, fmt.Sprintf("%s: service %s imports %s, another service's implementation (talk to it through its API)",
					fset.Position(imp.Pos()), owner, path))
			}
		}
	}
	if isTest { // tests set fixtures up in any table
		return out
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		own, ok := store.Owners[sel.Sel.Name]
		if !ok {
			return true
		}
		switch {
		case owner == "":
			out = append(out, fmt.Sprintf("%s: %s calls .%s() (tables %s of %s) but has no owner: declare it in store.PackageOwners",
				fset.Position(call.Pos()), dir, sel.Sel.Name, strings.Join(own.Tables, ", "), own.Owner))
		case owner != own.Owner:
			out = append(out, fmt.Sprintf("%s: %s (owner %s) calls .%s(): tables %s belong to %s",
				fset.Position(call.Pos()), dir, owner, sel.Sel.Name, strings.Join(own.Tables, ", "), own.Owner))
		}
		return true
	})
	return out
}

// exempt folders: the store defines the accessors; internal/app assembles the
// services (and opens the store for them); tests and generated code are not services.
func owndataExempt(dir string) bool {
	for _, p := range []string{"internal/store", "internal/app", "tests", "gen", ".tools"} {
		if dir == p || strings.HasPrefix(dir, p+"/") {
			return true
		}
	}
	return false
}

func TestServicesOwnTheirData(t *testing.T) {
	fset := token.NewFileSet()
	var violations []string
	files := 0
	for _, top := range []string{"services", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			dir := filepath.ToSlash(filepath.Dir(rel))
			if owndataExempt(dir) {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			files++
			violations = append(violations, owndataViolations(fset, dir, f, strings.HasSuffix(path, "_test.go"))...)
			return nil
		})
		require.NoError(t, err)
	}
	require.Greater(t, files, 100, "the scan found the sources")
	require.Empty(t, violations, "services own their data:\n%s", strings.Join(violations, "\n"))
}

// The checker catches what it is for: another service's tables, an undeclared shared
// package, another service's implementation.
func TestOwnershipCheckerCatchesViolations(t *testing.T) {
	src := `package scorer
import (
	"github.com/decision-fabric/fabric/services/decision-coordinator/coordinator"
	"github.com/decision-fabric/fabric/services/confidence-scorer/scorer/inner"
)
func f(st store.Store) { st.Proposals().Get(); st.Negotiations(); coordinator.X(); inner.Y() }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	require.NoError(t, err)
	got := owndataViolations(fset, "services/"+fabric.Scorer+"/scorer", f, false)
	require.Len(t, got, 3, "%s", strings.Join(got, "\n"))
	require.Contains(t, got[0], "imports github.com/decision-fabric/fabric/services/decision-coordinator/coordinator")
	require.Contains(t, got[1], "tables proposals belong to "+fabric.Coordinator)
	require.Contains(t, got[2], "tables negotiations, negotiation_votes belong to "+fabric.Negotiator)

	got = owndataViolations(fset, "internal/newhelper", f, false)
	require.Len(t, got, 2)
	require.Contains(t, got[0], "has no owner: declare it in store.PackageOwners")

	got = owndataViolations(fset, "services/"+fabric.Coordinator+"/coordinator", f, false)
	require.Len(t, got, 2, "its own proposals are fine; the negotiator's tables and the scorer's package are not: %s", strings.Join(got, "\n"))
}

var reCreateTable = regexp.MustCompile(`(?i)CREATE TABLE\s+(?:IF NOT EXISTS\s+)?([a-z_]+)`)

// Every table the migrations create has exactly one declared owner, and the ownership
// section of docs/architecture.md names each table with its owner.
func TestEveryTableHasOneOwner(t *testing.T) {
	declared := map[string]string{}
	for accessor, o := range store.Owners {
		for _, table := range o.Tables {
			require.NotContains(t, declared, table, "table %s declared twice (%s)", table, accessor)
			declared[table] = o.Owner
		}
	}
	var created []string
	for _, dialect := range []string{"postgres", "sqlite"} {
		dir := filepath.Join(root, "internal", "store", "migrations", dialect)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			for _, m := range reCreateTable.FindAllStringSubmatch(string(raw), -1) {
				if !slices.Contains(created, m[1]) && m[1] != "goose_db_version" {
					created = append(created, m[1])
				}
			}
		}
	}
	sort.Strings(created)
	require.NotEmpty(t, created)
	for _, table := range created {
		require.Contains(t, declared, table, "table %s has no owner in store.Owners", table)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(doc), "## Who owns which tables")
	require.True(t, ok, "docs/architecture.md has a \"Who owns which tables\" section")
	section, _, _ = strings.Cut(section, "\n## ")
	for table, owner := range declared {
		require.Regexp(t, "(?m)^\\|[^\\n]*`"+table+"`[^\\n]*\\|", section, "the docs name table %s", table)
		line := regexp.MustCompile("(?m)^.*`" + table + "`.*$").FindString(section)
		require.Contains(t, line, strings.Fields(owner)[0], "the docs give table %s its owner %s", table, owner)
	}
}
