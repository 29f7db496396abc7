package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// DecodeStrict decodes raw, at most maxBytes bytes holding exactly one YAML document, into
// v: unknown keys, a second document and an empty file are errors, and a panic in the
// YAML library on hostile input becomes an error. what names the file kind in messages
// ("regions", "templates").
func DecodeStrict(raw []byte, maxBytes int, what string, v any) (err error) {
	if len(raw) > maxBytes {
		return fmt.Errorf("%s: larger than %d bytes", what, maxBytes)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: malformed YAML: %v", what, r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: empty file", what)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: want exactly one YAML document", what)
	}
	return nil
}

// ReadBounded reads the file at path, refusing more than maxBytes bytes.
func ReadBounded(path string, maxBytes int, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, int64(maxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return raw, nil
}
