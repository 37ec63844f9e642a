package clickhouse

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/rungdev/rung/sink"
)

// permanent marks an error that waiting will not cure (what the servers are configured
// with): classify says so of it.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// classify is where every error of the ClickHouse sink gets its class. The client's
// own conversion errors (a column of another type than rung writes) come before any
// round trip and are permanent; the server's exceptions by code; network errors mean the
// server is unreachable. What it does not know is transient: retried a few times, then
// dropped, never retried for ever.
func classify(err error) sink.Class {
	var ex *ch.Exception
	switch {
	case errors.As(err, new(permanent)),
		errors.As(err, new(*column.ColumnConverterError)),
		errors.As(err, new(*column.UnsupportedColumnTypeError)),
		errors.As(err, new(*column.Error)),
		errors.Is(err, ch.ErrBatchInvalid):
		return sink.Permanent
	case errors.As(err, &ex):
		if permanentCodes[ex.Code] {
			return sink.Permanent
		}
		return sink.Transient
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, ch.ErrAcquireConnTimeout), errors.Is(err, ch.ErrConnectionClosed),
		errors.Is(err, driver.ErrBadConn), errors.As(err, new(net.Error)):
		return sink.Unreachable
	}
	return sink.Transient
}

// permanentCodes are the server's exception codes that say the statement or its data
// is wrong for the table as it is, or the user may not run it: the same insert fails
// the same way however long it waits. Overload (TOO_MANY_PARTS 252,
// MEMORY_LIMIT_EXCEEDED 241, TOO_MANY_SIMULTANEOUS_QUERIES 202, TIMEOUT_EXCEEDED 159,
// TABLE_IS_READ_ONLY 242 of a replica, ...) is not here: it passes.
var permanentCodes = map[int32]bool{
	6:   true, // CANNOT_PARSE_TEXT
	8:   true, // THERE_IS_NO_COLUMN
	10:  true, // NOT_FOUND_COLUMN_IN_BLOCK
	16:  true, // NO_SUCH_COLUMN_IN_TABLE
	20:  true, // NUMBER_OF_COLUMNS_DOESNT_MATCH
	27:  true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	36:  true, // BAD_ARGUMENTS
	38:  true, // CANNOT_PARSE_DATE
	41:  true, // CANNOT_PARSE_DATETIME
	43:  true, // ILLEGAL_TYPE_OF_ARGUMENT
	44:  true, // ILLEGAL_COLUMN
	47:  true, // UNKNOWN_IDENTIFIER
	48:  true, // NOT_IMPLEMENTED
	50:  true, // UNKNOWN_TYPE
	53:  true, // TYPE_MISMATCH
	60:  true, // UNKNOWN_TABLE
	62:  true, // SYNTAX_ERROR
	69:  true, // ARGUMENT_OUT_OF_BOUND
	70:  true, // CANNOT_CONVERT_TYPE
	72:  true, // CANNOT_PARSE_NUMBER
	81:  true, // UNKNOWN_DATABASE
	117: true, // INCORRECT_DATA
	164: true, // READONLY: the user's profile forbids writes
	192: true, // UNKNOWN_USER
	193: true, // WRONG_PASSWORD
	194: true, // REQUIRED_PASSWORD
	291: true, // DATABASE_ACCESS_DENIED
	497: true, // ACCESS_DENIED
	516: true, // AUTHENTICATION_FAILED
}
