package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
)

func TestPipelineConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  PipelineConfig
		want string
	}{
		{PipelineConfig{}, "no business database"},
		{PipelineConfig{SQLitePath: "x.db", NoProjector: true}, "no-projector"},
		{PipelineConfig{SQLitePath: "x.db", Relay: RelayConfig{BatchSize: -1}}, "batch size"},
		{PipelineConfig{SQLitePath: "x.db", Broker: BrokerConfig{SubjectPrefix: "a.>"}}, "subject prefix"},
	} {
		if err := tc.cfg.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrConfig naming %q", tc.cfg, err, tc.want)
		}
	}
}

func pipelineRoundTrip(t *testing.T, cfg PipelineConfig, metric string) {
	t.Helper()
	ctx := context.Background()
	p, err := OpenPipeline(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }() // stopped below
	ids := map[string]bool{}
	for i := range 20 {
		ev := leadEvent("lead-"+string(rune('a'+i)), t0)
		ids[ev.ID] = true
		if err := sqldb.InTx(ctx, p.DB, func(tx *sql.Tx) error { return Write(ctx, tx, p.Dialect, ev) }); err != nil {
			t.Fatal(err)
		}
	}
	p.Relay.Notify()
	wantEvents(t, backend{Backend: sqltest.Backend{DB: p.DB, Dialect: p.Dialect}}, 20*time.Second, ids)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var m bytes.Buffer
	p.WriteMetrics(&m)
	if !strings.Contains(m.String(), metric) {
		t.Fatalf("metrics lack %q:\n%s", metric, m.String())
	}
}

func TestPipelineEmbedded(t *testing.T) {
	pipelineRoundTrip(t, PipelineConfig{SQLitePath: filepath.Join(t.TempDir(), BusinessDBFile),
		Relay: RelayConfig{PollInterval: 10 * time.Millisecond}}, "rung_events_projected_total 20\n")
}

func TestPipelineJetStream(t *testing.T) {
	b := pg(t)
	broker, _, _ := testBroker(t, natsURL())
	pipelineRoundTrip(t, PipelineConfig{Postgres: b.dsn, NATS: natsURL(), Broker: broker,
		Relay: RelayConfig{PollInterval: 10 * time.Millisecond}, Projector: ProjectorConfig{FetchWait: 100 * time.Millisecond}},
		"rung_outbox_broker_stored_total 20\n")
}
