package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/rungdev/rung/schemas"
)

const quarantineDDL = `CREATE TABLE IF NOT EXISTS quarantine (
	received_ms INTEGER NOT NULL,
	site        TEXT    NOT NULL,
	reason      TEXT    NOT NULL,
	pointer     TEXT    NOT NULL,
	message     TEXT    NOT NULL,
	raw         TEXT    NOT NULL
)`

// MigrateQuarantine creates the quarantine table, for --quarantine.
func (s *SQLite) MigrateQuarantine(ctx context.Context) error {
	for _, q := range []string{quarantineDDL, `CREATE INDEX IF NOT EXISTS quarantine_site ON quarantine (site, received_ms)`} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate quarantine: %w", err)
		}
	}
	return nil
}

// WriteQuarantine stores rejected signals.
func (s *SQLite) WriteQuarantine(ctx context.Context, rows []schemas.Quarantined) error {
	if len(rows) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := "INSERT INTO quarantine (received_ms, site, reason, pointer, message, raw) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?),", len(rows)), ",")
	args := make([]any, 0, 6*len(rows))
	for _, r := range rows {
		args = append(args, r.At, r.Site, r.Code, r.Pointer, r.Message, r.Raw)
	}
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("write %d quarantined signals: %w", len(rows), err)
	}
	return nil
}

// PruneQuarantine deletes rows received before beforeMs.
func (s *SQLite) PruneQuarantine(ctx context.Context, beforeMs int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.db.ExecContext(ctx, "DELETE FROM quarantine WHERE received_ms < ?", beforeMs)
	return err
}

// Quarantined returns the newest quarantined signals, of one site or ("") of all.
func (s *SQLite) Quarantined(ctx context.Context, site string, limit int) ([]schemas.Quarantined, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT received_ms, site, reason, pointer, message, raw FROM quarantine
		WHERE ? = '' OR site = ? ORDER BY received_ms DESC LIMIT ?`, site, site, limit)
	if err != nil {
		return nil, fmt.Errorf("read quarantine: %w", err)
	}
	defer rows.Close()
	var out []schemas.Quarantined
	for rows.Next() {
		var r schemas.Quarantined
		if err := rows.Scan(&r.At, &r.Site, &r.Code, &r.Pointer, &r.Message, &r.Raw); err != nil {
			return nil, fmt.Errorf("read quarantine: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
