// Package modroot finds the module's root folder (the nearest folder above the working
// directory holding go.mod), for the code generators and test helpers that read or
// write files of the repository.
package modroot

import (
	"errors"
	"os"
	"path/filepath"
)

// ErrNotFound: no folder above the working directory holds go.mod.
var ErrNotFound = errors.New("go.mod not found above the working directory")

// Find returns the nearest folder above the working directory (itself included) that
// holds go.mod.
func Find() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNotFound
		}
		dir = parent
	}
}
