package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSupervisor: stages stop in their written order, each only once the one before has
// returned; a part failing, or ending unasked, stops every part and is the error; an
// error a part returns while stopping is reported too.
func TestSupervisor(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fail    map[string]func() error // parts that end by themselves, and how
		stopErr map[string]error        // what a part returns once asked to stop
		cancel  bool                    // the command's context ends
		want    []string                // substrings of the error; none: nil
	}{
		{name: "asked to stop", cancel: true},
		{name: "a part fails", fail: map[string]func() error{"drain": func() error { return errBoom }}, want: []string{"drain: boom"}},
		{name: "a part ends unasked", fail: map[string]func() error{"relay": func() error { return nil }}, want: []string{"relay: stopped unexpectedly"}},
		{name: "loss while stopping", cancel: true, stopErr: map[string]error{"drain": errors.New("3 dropped")}, want: []string{"drain: 3 dropped"}},
		{name: "canceled is no error", cancel: true, stopErr: map[string]error{"relay": context.Canceled}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				events []string
			)
			note := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
			sup := &supervisor{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			for _, name := range []string{"accept", "drain", "relay"} {
				sup.then(name, part{name, func(ctx context.Context) error {
					if f := tt.fail[name]; f != nil {
						note(name + " ended")
						return f()
					}
					<-ctx.Done()
					note(name + " asked")
					if sup.Stopping() {
						note(name + " saw stopping")
					}
					note(name + " stopped")
					return tt.stopErr[name]
				}})
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancel {
				cancel()
			}
			defer cancel()
			err := sup.Run(ctx)

			var order []string
			for _, e := range events {
				if strings.HasSuffix(e, " stopped") || strings.HasSuffix(e, " ended") {
					order = append(order, strings.Fields(e)[0])
				}
			}
			var asked []string
			for _, name := range []string{"accept", "drain", "relay"} {
				if tt.fail[name] == nil {
					asked = append(asked, name)
				}
			}
			var stopped []string
			for _, name := range order {
				if tt.fail[name] == nil {
					stopped = append(stopped, name)
				}
			}
			if strings.Join(stopped, ",") != strings.Join(asked, ",") {
				t.Errorf("stopped in order %v, want %v (events %v)", stopped, asked, events)
			}
			for i, e := range events {
				if strings.HasSuffix(e, " asked") && (i+1 >= len(events) || !strings.HasSuffix(events[i+1], " saw stopping")) {
					t.Errorf("%s: Stopping() was false (events %v)", e, events)
				}
			}
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Run = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Run = nil, want %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestHTTPPart: an HTTP part stops cleanly when asked, and its listener failing under it
// is a failure that stops the command (aggregate's and relay's listeners).
func TestHTTPPart(t *testing.T) {
	for _, fail := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		sup := &supervisor{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		sup.then("serve", httpPart("listener", &http.Server{Handler: http.NotFoundHandler()}, ln, time.Second))
		ctx, cancel := context.WithCancel(context.Background())
		if fail {
			ln.Close()
		} else {
			cancel()
		}
		err = sup.Run(ctx)
		cancel()
		if fail != (err != nil) || (fail && !strings.Contains(err.Error(), "listener: serve")) {
			t.Errorf("listener failed %v: Run = %v", fail, err)
		}
	}
}
