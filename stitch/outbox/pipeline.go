package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
)

// BusinessDBFile is the embedded business database's file name inside rung's data
// directory: the outbox, the events table and the tier tables live there.
const BusinessDBFile = "business.db"

// PipelineConfig is what `rung relay` is told: where the outbox is, and where it ships.
type PipelineConfig struct {
	Postgres   string // PostgreSQL URL of the business database; empty: SQLitePath
	SQLitePath string // the embedded business database file, used when Postgres is empty
	// NATS is the broker's URL; empty: no broker, the relay projects straight into the
	// events table.
	NATS        string
	NoProjector bool // with NATS: ship only, another process runs the projector
	Broker      BrokerConfig
	Relay       RelayConfig
	Projector   ProjectorConfig
	Logger      *slog.Logger
}

// Validate checks the whole configuration once and names every problem.
func (c *PipelineConfig) Validate() error {
	var errs []error
	if c.Postgres == "" && c.SQLitePath == "" {
		errs = append(errs, fmt.Errorf("%w: no business database: give a PostgreSQL URL or a SQLite path", ErrConfig))
	}
	if c.NoProjector && c.NATS == "" {
		errs = append(errs, fmt.Errorf("%w: without NATS the relay is the projector; no-projector needs a NATS URL", ErrConfig))
	}
	r, b, p := c.Relay, c.Broker, c.Projector
	r.setDefaults()
	b.setDefaults()
	p.setDefaults()
	for _, err := range []error{r.Validate(), b.Validate(), p.Validate()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Pipeline is the outbox's delivery, wired: a relay, and with NATS a projector. It owns
// the database handle and the NATS connection it opened.
type Pipeline struct {
	DB        *sql.DB
	Dialect   sqldb.Dialect
	Relay     *Relay
	Projector *Projector // nil without NATS or with NoProjector
	nc        *nats.Conn
}

// OpenPipeline opens the business database, creates the outbox and events tables when
// absent, connects to NATS when configured (not waiting for it: an absent broker is an
// outage the relay rides out) and builds the relay and projector.
func OpenPipeline(ctx context.Context, cfg PipelineConfig) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Relay.Logger == nil {
		cfg.Relay.Logger = cfg.Logger.With("part", "relay")
	}
	if cfg.Projector.Logger == nil {
		cfg.Projector.Logger = cfg.Logger.With("part", "projector")
	}
	p := &Pipeline{Dialect: sqldb.SQLite}
	dsn := cfg.SQLitePath
	if cfg.Postgres != "" {
		p.Dialect, dsn = sqldb.Postgres, cfg.Postgres
	}
	db, err := sqldb.Open(ctx, p.Dialect, dsn)
	if err != nil {
		return nil, fmt.Errorf("open the business database: %w", err)
	}
	p.DB = db
	if err := Migrate(ctx, db, p.Dialect); err != nil {
		p.Close()
		return nil, err
	}
	if err := events.Migrate(ctx, db, p.Dialect); err != nil {
		p.Close()
		return nil, err
	}
	var ship Shipper = NewDirect(p.Dialect)
	if cfg.NATS != "" {
		if p.nc, err = Connect(cfg.NATS, cfg.Logger); err != nil {
			p.Close()
			return nil, err
		}
		if ship, err = NewJetStream(p.nc, cfg.Broker); err != nil {
			p.Close()
			return nil, err
		}
		if !cfg.NoProjector {
			if p.Projector, err = NewProjector(db, p.Dialect, p.nc, cfg.Broker, cfg.Projector); err != nil {
				p.Close()
				return nil, err
			}
		}
	}
	if p.Relay, err = NewRelay(db, p.Dialect, ship, cfg.Relay); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Run runs the relay and the projector until ctx is done; both finish the batch in
// hand (or roll it back) and Run returns nil.
func (p *Pipeline) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Relay.Run(ctx) })
	if p.Projector != nil {
		g.Go(func() error { return p.Projector.Run(ctx) })
	}
	return g.Wait()
}

// WriteMetrics writes the relay's and projector's metrics in Prometheus text format.
func (p *Pipeline) WriteMetrics(w io.Writer) {
	p.Relay.WriteMetrics(w)
	if p.Projector != nil {
		p.Projector.WriteMetrics(w)
	}
}

// Close closes the NATS connection and the database. Call it after Run has returned.
func (p *Pipeline) Close() error {
	if p.nc != nil {
		p.nc.Close()
	}
	if p.DB != nil {
		return p.DB.Close()
	}
	return nil
}
