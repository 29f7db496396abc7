package keyfile_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/decision-fabric/fabric/internal/keyfile"
)

// TestCreateExclusiveRace exercises the cross-process path (no in-process mutex): many
// creators, one winner, every reader sees the winner's complete bytes.
func TestCreateExclusiveRace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	const n = 16
	var wg sync.WaitGroup
	wins := make([]bool, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte('a' + i)}, 1<<16)
			err := keyfile.CreateExclusive(path, data, 0o600)
			switch {
			case err == nil:
				wins[i] = true
			case errors.Is(err, fs.ErrExist):
			default:
				t.Error(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || len(got) != 1<<16 || !bytes.Equal(got, bytes.Repeat(got[:1], 1<<16)) {
				t.Errorf("reader saw partial or mixed content (%d bytes, %v)", len(got), err)
			}
		}(i)
	}
	wg.Wait()
	count := 0
	for _, w := range wins {
		if w {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("%d winners", count)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d entries left", len(entries))
	}
}
