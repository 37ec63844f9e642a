package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestServeConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // substring; empty: valid
		check   func(t *testing.T, c map[string]any)
	}{
		{name: "defaults", check: func(t *testing.T, c map[string]any) {
			if c["listen"] != "127.0.0.1:8080" || c["clickhouse"] != "" || c["when_full"] != "reject" {
				t.Errorf("defaults: %v", c)
			}
		}},
		{name: "env fills", env: map[string]string{"RUNG_BATCH_SIZE": "7", "RUNG_WHEN_FULL": "drop"}, check: func(t *testing.T, c map[string]any) {
			if c["batch_size"] != 7.0 || c["when_full"] != "drop" {
				t.Errorf("env not applied: %v", c)
			}
		}},
		{name: "flag beats env", args: []string{"--batch-size", "9"}, env: map[string]string{"RUNG_BATCH_SIZE": "7"}, check: func(t *testing.T, c map[string]any) {
			if c["batch_size"] != 9.0 {
				t.Errorf("flag did not win: %v", c)
			}
		}},
		{name: "bad env value", env: map[string]string{"RUNG_BATCH_SIZE": "many"}, wantErr: `RUNG_BATCH_SIZE="many"`},
		{name: "bad policy", args: []string{"--when-full", "block"}, wantErr: "--when-full"},
		{name: "http clickhouse", args: []string{"--clickhouse", "http://x:8123"}, wantErr: "native protocol"},
		{name: "bad listen", args: []string{"--listen", "8080"}, wantErr: "--listen"},
		{name: "tiny buffer", args: []string{"--buffer-bytes", "10"}, wantErr: "--buffer-bytes"},
		{name: "body over the buffer", args: []string{"--buffer-bytes", "2097152", "--max-body-bytes", "4194304"}, wantErr: "--max-body-bytes 4194304: must not be more than --buffer-bytes"},
		{name: "several errors at once", args: []string{"--batch-size", "0", "--max-batch", "0"}, wantErr: "--max-batch"},
		{name: "cluster without clickhouse", args: []string{"--clickhouse-cluster", "rung"}, wantErr: "--clickhouse-cluster needs --clickhouse"},
		{name: "nats url", args: []string{"--nats", "127.0.0.1:4222"}, wantErr: "want nats://host:port"},
		{name: "stream subject", args: []string{"--nats", "nats://127.0.0.1:4222", "--stream-subject", "rung.*"}, wantErr: "--stream-subject"},
		{name: "stream partitions", args: []string{"--nats", "nats://127.0.0.1:4222", "--stream-partitions", "0"}, wantErr: "--stream-partitions 0"},
		{name: "cluster collector", args: []string{"--nats", "nats://a:4222,nats://b:4222", "--stream-replicas", "3", "--publish-linger", "2ms"}, check: func(t *testing.T, c map[string]any) {
			if c["nats"] != "nats://a:4222,nats://b:4222" || c["stream_replicas"] != 3.0 || c["stream"] != "RUNG_SIGNALS" ||
				c["publish_linger"] != "2ms" || c["publish_max_bytes"] != 65536.0 {
				t.Errorf("stream settings: %v", c)
			}
		}},
		{name: "disk log in a cluster", args: []string{"--nats", "nats://127.0.0.1:4222", "--durability", "disk"}, wantErr: "--durability disk: one node only"},
		{name: "no linger", args: []string{"--nats", "nats://127.0.0.1:4222", "--publish-linger", "0s"}, wantErr: "--publish-linger 0s"},
		{name: "messages past NATS's payload", args: []string{"--nats", "nats://127.0.0.1:4222", "--publish-max-bytes", "1048576"}, wantErr: "--publish-max-bytes 1048576"},
		{name: "flood controls", args: []string{"--rate-ip-delay", "100ms", "--max-conns-per-ip", "32"}, check: func(t *testing.T, c map[string]any) {
			if c["rate_ip_delay"] != "100ms" || c["max_conns_per_ip"] != 32.0 {
				t.Errorf("flood controls: %v", c)
			}
		}},
		{name: "delay too long", args: []string{"--rate-ip-delay", "1m"}, wantErr: "--rate-ip-delay 1m0s"},
		{name: "negative per-ip cap", args: []string{"--max-conns-per-ip", "-1"}, wantErr: "--max-conns-per-ip -1"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "durability from env", env: map[string]string{"RUNG_DURABILITY": "disk"}, check: func(t *testing.T, c map[string]any) {
			if c["durability"] != "disk" || c["wal_bytes"] != float64(1<<30) {
				t.Errorf("durability: %v", c)
			}
		}},
		{name: "bad durability", args: []string{"--durability", "fsync"}, wantErr: `--durability "fsync"`},
		{name: "tiny log", args: []string{"--durability", "disk", "--wal-bytes", "1000"}, wantErr: "--wal-bytes 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			var out bytes.Buffer
			err := runServe(context.Background(), append(tt.args, "--dry-run"), env, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var c map[string]any
			if err := json.Unmarshal(out.Bytes(), &c); err != nil {
				t.Fatalf("dry-run output: %v\n%s", err, out.String())
			}
			if _, ok := c["api_token"]; ok {
				t.Error("dry-run prints the API token")
			}
			tt.check(t, c)
		})
	}
}
