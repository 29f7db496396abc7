// Package keyfile writes key and seed files so that no reader ever sees one half
// written, and concurrent first starts agree on one file.
package keyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// tempFile writes data to a new temporary file in dir with the given mode, synced and
// closed, and returns its path.
func tempFile(dir string, data []byte, mode fs.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, ".keyfile-*.tmp")
	if err != nil {
		return "", fmt.Errorf("keyfile: %w", err)
	}
	name := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("keyfile: write %s: %w", name, err)
	}
	return name, nil
}

// CreateExclusive makes path hold exactly data, failing with an error wrapping
// fs.ErrExist if path already exists. Readers never see a partial file: the content is
// written to a temporary file and published with os.Link, which fails if path exists.
// On file systems without hard links it falls back to O_EXCL creation (still exclusive,
// but a concurrent reader may then see a partially written file).
func CreateExclusive(path string, data []byte, mode fs.FileMode) error {
	tmp, err := tempFile(filepath.Dir(path), data, mode)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }()
	linkErr := os.Link(tmp, path)
	if linkErr == nil {
		return nil
	}
	if errors.Is(linkErr, fs.ErrExist) {
		return fmt.Errorf("keyfile: %s: %w", path, fs.ErrExist)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("keyfile: create %s (link failed: %w): %w", path, linkErr, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keyfile: write %s: %w", path, err)
	}
	return nil
}

// WriteAtomic replaces path with data (temporary file + rename).
func WriteAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := tempFile(filepath.Dir(path), data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("keyfile: %w", err)
	}
	return nil
}

// Ensure makes path hold data, rewriting it atomically only if it is missing or
// different. Concurrent callers write identical bytes, so the race is benign.
func Ensure(path string, data []byte, mode fs.FileMode) error {
	cur, err := os.ReadFile(path)
	if err == nil && bytes.Equal(cur, data) {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyfile: %w", err)
	}
	return WriteAtomic(path, data, mode)
}
