package clickhouse

// ddl returns the statements that create the database and its tables when absent. Every
// rollup table is a ReplacingMergeTree: rows are absolute values with a version (see
// package sink), so a retried insert changes nothing, and merges keep the row every
// query would pick anyway. ReplacingMergeTree only replaces within a partition, so a
// table is partitioned only by something all versions of a row share (the session's
// start date, the rollup hour's date); exposures and conversions are not partitioned.
func ddl(db string) []string {
	return []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		`CREATE TABLE IF NOT EXISTS ` + db + `.signals (
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
			props        String
		) ENGINE = MergeTree
		PARTITION BY toYYYYMM(date)
		ORDER BY (site, date, anonymous_id, received_ms)`,
		// One row per version of a session; the highest version is its state.
		`CREATE TABLE IF NOT EXISTS ` + db + `.sessions (
			date         Date,
			site         String,
			anonymous_id String,
			start_ms     Int64,
			landing_ms   Int64,
			landing_path String,
			utm_source   String,
			utm_medium   String,
			utm_campaign String,
			converted    UInt8,
			version      UInt64
		) ENGINE = ReplacingMergeTree(version)
		PARTITION BY toYYYYMM(date)
		ORDER BY (site, anonymous_id, start_ms)`,
		// Cumulative counts per (landing key, cell); readers sum the cells' latest rows.
		`CREATE TABLE IF NOT EXISTS ` + db + `.landing_hourly (
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
			version      UInt64
		) ENGINE = ReplacingMergeTree(version)
		PARTITION BY toYYYYMM(date)
		ORDER BY (site, hour, landing_path, utm_source, utm_medium, utm_campaign, cell)`,
		// rank = MaxInt64 - first_ms, so a merge keeps the earliest exposure; at equal
		// times it keeps the last written, which the writer makes the smallest variant.
		`CREATE TABLE IF NOT EXISTS ` + db + `.exposures (
			site         String,
			experiment   String,
			anonymous_id String,
			first_ms     Int64,
			variant      String,
			rank         UInt64
		) ENGINE = ReplacingMergeTree(rank)
		ORDER BY (site, experiment, anonymous_id)`,
		`CREATE TABLE IF NOT EXISTS ` + db + `.conversions (
			site         String,
			anonymous_id String,
			last_ms      UInt64
		) ENGINE = ReplacingMergeTree(last_ms)
		ORDER BY (site, anonymous_id)`,
	}
}

// rollupTables are the tables Optimize merges.
var rollupTables = []string{"sessions", "landing_hourly", "exposures", "conversions"}
