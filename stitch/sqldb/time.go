package sqldb

import (
	"fmt"
	"time"
)

// Time scans an instant from either backend: a time.Time from PostgreSQL or from a
// SQLite column declared TIMESTAMP, or the text SQLite returns for an expression such
// as max(col). NULL scans as the zero time.
type Time struct{ time.Time }

var layouts = []string{
	sqliteTime,
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02",
	time.RFC3339Nano,
}

// Scan implements sql.Scanner.
func (t *Time) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		t.Time = time.Time{}
		return nil
	case time.Time:
		t.Time = v.UTC()
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	}
	return fmt.Errorf("scan %T into a time", src)
}

func (t *Time) parse(s string) error {
	for _, l := range layouts {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return fmt.Errorf("scan %q: not a time this package writes", s)
}
