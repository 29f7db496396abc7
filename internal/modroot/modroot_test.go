package modroot

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFindFromASubfolder(t *testing.T) {
	root, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("%s holds no go.mod: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "modroot", "modroot.go")); err != nil {
		t.Fatalf("%s is not this module's root: %v", root, err)
	}
}

func TestFindOutsideAModule(t *testing.T) {
	t.Chdir(t.TempDir())
	if _, err := Find(); err == nil {
		t.Fatal("a folder outside any module has no root")
	}
}
