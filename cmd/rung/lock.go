package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockFile is the file in a data directory that serve holds locked while it runs.
const lockFile = "rung.lock"

// lockDataDir takes an exclusive lock on dir for as long as the returned file stays
// open, so a second `rung serve` on the same directory refuses at once instead of
// sharing its SQLite files. The lock is the kernel's (flock): it goes with the process
// however that ends, a crash included, so a stale file never blocks a restart. The file
// holds the holder's pid, for the refusal to name.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create --data-dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock --data-dir %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "unknown pid"
			if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
				holder = "pid " + strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("--data-dir %s is in use by another rung serve (%s): stop it, or give this one another --data-dir", dir, holder)
		}
		return nil, fmt.Errorf("lock --data-dir %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock --data-dir %s: write the pid: %w", dir, err)
	}
	return f, nil
}
