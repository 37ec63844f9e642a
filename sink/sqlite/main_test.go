package sqlite

import (
	"testing"

	"go.uber.org/goleak"
)

// The sink starts no goroutine; database/sql's connection opener ends with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
