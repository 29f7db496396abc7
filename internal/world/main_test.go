package world

import (
	"testing"

	"github.com/decision-fabric/fabric/internal/store/pgtest"
)

// TestMain drops this process's Postgres test databases when the tests end.
func TestMain(m *testing.M) { pgtest.Main(m) }
