package fabrictest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// A port FreePort gave out is locked for this process: another open file
// description (as another test process would hold) cannot lock it, so no other
// test process gives it out.
func TestFreePortIsLockedAcrossProcesses(t *testing.T) {
	port := FreePort(t)
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "decision-fabric-test-ports", fmt.Sprint(port)), os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	require.ErrorIs(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB), syscall.EWOULDBLOCK)
	require.False(t, lockPort(port), "a locked port is not given out again")
	require.NotEqual(t, port, FreePort(t))
}
