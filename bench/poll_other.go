//go:build !linux

package bench

import (
	"context"
	"errors"
	"time"
)

// canPoll: only Linux has the event loops; elsewhere a closed-loop run drives each
// connection from a goroutine of its own.
const canPoll = false

func (r *runner) closedLoop(ctx context.Context, deadline time.Duration, timedDone chan struct{}) error {
	return errors.New("no event loop on this system")
}
