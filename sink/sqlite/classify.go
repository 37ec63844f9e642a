package sqlite

import (
	"errors"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rungdev/rung/sink"
)

// classify is where every error of the SQLite sink gets its class, by SQLite's primary
// result code. Busy and locked files, a full disk and I/O errors may pass (another
// process lets go, space is freed): transient, retried a few times. A read-only database,
// a schema that is not rung's (SQLITE_ERROR: no such table or column), a constraint, a
// type mismatch or a corrupt file will not: permanent. SQLite has no server to be
// unreachable; what is not SQLite's own error is transient.
func classify(err error) sink.Class {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return sink.Transient
	}
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_ERROR, sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH,
		sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_AUTH, sqlite3.SQLITE_PERM,
		sqlite3.SQLITE_RANGE:
		return sink.Permanent
	}
	return sink.Transient
}
