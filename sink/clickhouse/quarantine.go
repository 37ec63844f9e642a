package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/rungdev/rung/schemas"
)

// MigrateQuarantine creates the quarantine table, for --quarantine (on a cluster, on
// every node: see cluster.go).
func (c *ClickHouse) MigrateQuarantine(ctx context.Context) error {
	if err := c.migrate(ctx, []table{quarantineTable}); err != nil {
		return fmt.Errorf("migrate quarantine: %w", err)
	}
	return nil
}

// WriteQuarantine stores rejected signals.
func (c *ClickHouse) WriteQuarantine(ctx context.Context, rows []schemas.Quarantined) error {
	n := len(rows)
	if n == 0 {
		return nil
	}
	date, ms := make([]time.Time, n), make([]int64, n)
	site, reason, ptr, msg, raw := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		date[i], ms[i] = time.UnixMilli(r.At).UTC(), r.At
		site[i], reason[i], ptr[i], msg[i], raw[i] = r.Site, r.Code, r.Pointer, r.Message, r.Raw
	}
	d := dest{c.conn, c.db + ".quarantine"}
	if k := c.cluster; k != nil {
		d = dest{k.shards[k.anyShard()], c.db + ".quarantine_local"}
	}
	batch, err := d.conn.PrepareBatch(ctx, "INSERT INTO "+d.table+" (date, received_ms, site, reason, pointer, message, raw)")
	if err != nil {
		return fmt.Errorf("write %d quarantined signals: %w", n, err)
	}
	defer batch.Close()
	for i, col := range []any{date, ms, site, reason, ptr, msg, raw} {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("write %d quarantined signals: column %d: %w", n, i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("write %d quarantined signals: %w", n, err)
	}
	return nil
}

// PruneQuarantine deletes rows received before beforeMs (on a cluster, from every
// node's local table: a Distributed table takes no ALTER ... DELETE).
func (c *ClickHouse) PruneQuarantine(ctx context.Context, beforeMs int64) error {
	if c.cluster != nil {
		return c.cluster.eachNode(ctx, func(conn driver.Conn, _ clusterNode) error {
			return conn.Exec(ctx, "ALTER TABLE "+c.db+".quarantine_local DELETE WHERE received_ms < ?", beforeMs)
		})
	}
	return c.conn.Exec(ctx, "ALTER TABLE "+c.db+".quarantine DELETE WHERE received_ms < ?", beforeMs)
}

// Quarantined returns the newest quarantined signals, of one site or ("") of all.
func (c *ClickHouse) Quarantined(ctx context.Context, site string, limit int) ([]schemas.Quarantined, error) {
	rows, err := c.conn.Query(ctx, `SELECT received_ms, site, reason, pointer, message, raw FROM `+c.db+`.quarantine
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
