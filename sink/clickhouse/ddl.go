package clickhouse

// table is one table rung creates: its columns and its engine clause. In the single-node
// layout it is created as db.name; in the cluster layout as db.name_local on every node,
// with a Distributed table db.name over them (cluster.go).
//
// Every rollup table is a ReplacingMergeTree: rows are absolute values with a version
// (see package sink), so a retried insert changes nothing, and merges keep the row every
// query would pick anyway. ReplacingMergeTree only replaces within a partition, so a
// table is partitioned only by something all versions of a row share (the session's
// start date, the rollup hour's date); exposures and conversions are not partitioned.
// On a cluster all versions of a row also share a shard (cluster.go places them by a
// hash of their key), so merges replace them there too.
type table struct {
	name, columns, engine string
}

var (
	signalsTable = table{"signals", `
			date         Date,
			received_at  DateTime,
			received_ms  Int64,
			event_id     String,
			type         String,
			site         String,
			anonymous_id String,
			bot          UInt8,
			url          String,
			path         String,
			referrer     String,
			utm_source   String,
			utm_medium   String,
			utm_campaign String,
			utm_term     String,
			utm_content  String,
			name         String,
			experiment   String,
			variant      String,
			value        Nullable(Float64),
			props        String,
			session_ms   Int64,
			event_ms     Int64 DEFAULT received_ms,
			seq          UInt64,
			flush        UInt64`, `MergeTree
		PARTITION BY toYYYYMM(date)
		ORDER BY (site, date, anonymous_id, received_ms)`}
	// Cumulative counts per (landing key, cell); readers sum the cells' latest rows.
	landingTable = table{"landing_hourly", `
			date         Date,
			hour         DateTime,
			site         String,
			landing_path String,
			utm_source   String,
			utm_medium   String,
			utm_campaign String,
			cell         UInt64,
			sessions     Int64,
			converted    Int64,
			version      UInt64`, `ReplacingMergeTree(version)
		PARTITION BY toYYYYMM(date)
		ORDER BY (site, hour, landing_path, utm_source, utm_medium, utm_campaign, cell)`}
	// A visitor's first exposure to each experiment, and (experiment '', which no
	// exposure has) their latest conversion, in one table so a flush writes one part
	// for both. rank = MaxInt64 - ms for exposures, so a merge keeps the earliest (at
	// equal times the last written, which the writer makes the smallest variant), and
	// ms for conversions, so a merge keeps the latest.
	visitorsTable = table{"visitors", `
			site         String,
			anonymous_id String,
			experiment   String,
			ms           Int64,
			variant      String,
			rank         UInt64`, `ReplacingMergeTree(rank)
		ORDER BY (site, experiment, anonymous_id)`}
	// Rejected signals, for --quarantine (MigrateQuarantine). Old rows go by
	// PruneQuarantine (an ALTER ... DELETE), since TTL is not available on every server
	// rung supports.
	quarantineTable = table{"quarantine", `
			date        Date,
			received_ms Int64,
			site        String,
			reason      String,
			pointer     String,
			message     String,
			raw         String`, `MergeTree PARTITION BY toYYYYMM(date) ORDER BY (site, received_ms)`}
)

// tables are the tables Open creates.
var tables = []table{signalsTable, landingTable, visitorsTable, countedTable}

// create returns the statement that creates t as db.name when absent.
func (t table) create(db, name string) string {
	return "CREATE TABLE IF NOT EXISTS " + db + "." + name + " (" + t.columns + "\n\t\t) ENGINE = " + t.engine
}

// rollupTables are the tables Optimize merges.
var rollupTables = []string{"landing_hourly", "visitors"}

// addedColumns are columns added after a table was first released, with their type:
// migrate adds them to tables created before (18.16 has no ADD COLUMN IF NOT EXISTS).
var addedColumns = []struct{ table, column, typ string }{
	{"signals", "session_ms", "Int64"},
	// Signals stored before event times were placed at their receive time.
	{"signals", "event_ms", "Int64 DEFAULT received_ms"},
	{"signals", "seq", "UInt64"},
	// Keys recorded before flushes had markers are confirmed: 0.
	{"counted", "flush", "UInt64"},
	// Signals stored before they carried their flush: 0, their counted rows say.
	{"signals", "flush", "UInt64"},
}
