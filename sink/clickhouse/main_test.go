package clickhouse

import (
	"testing"

	"go.uber.org/goleak"
)

// Write's concurrent rollup inserts are joined before it returns; Close ends the rest.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
