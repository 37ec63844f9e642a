package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestPrivateByDefault: serve refuses to put its private surfaces in front of anyone
// without a token, and says what to do; it holds under --dry-run, which is how
// deployments check their command lines.
func TestPrivateByDefault(t *testing.T) {
	refused := []string{"--api-token", "RUNG_API_TOKEN", "--admin-listen 127.0.0.1", "--insecure-public-stats"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		refuses string // the flag and address the refusal names; empty: starts
	}{
		{name: "default loopback", args: nil},
		{name: "loopback v6", args: []string{"--listen", "[::1]:8080"}},
		{name: "localhost", args: []string{"--listen", "localhost:8080"}},
		{name: "other loopback", args: []string{"--listen", "127.0.0.2:8080"}},
		{name: "every interface", args: []string{"--listen", "0.0.0.0:8080"}, refuses: "--listen 0.0.0.0:8080"},
		{name: "empty host", args: []string{"--listen", ":8080"}, refuses: "--listen :8080"},
		{name: "every interface v6", args: []string{"--listen", "[::]:8080"}, refuses: "--listen [::]:8080"},
		{name: "a LAN address", args: []string{"--listen", "10.0.0.5:8080"}, refuses: "--listen 10.0.0.5:8080"},
		{name: "a host name", args: []string{"--listen", "rung.internal:8080"}, refuses: "--listen rung.internal:8080"},
		{name: "token", args: []string{"--listen", "0.0.0.0:8080", "--api-token", "s3cret"}},
		{name: "token from env", args: []string{"--listen", "0.0.0.0:8080"}, env: map[string]string{"RUNG_API_TOKEN": "s3cret"}},
		{name: "admin on loopback", args: []string{"--listen", "0.0.0.0:8080", "--admin-listen", "127.0.0.1:9090"}},
		{name: "admin public", args: []string{"--admin-listen", "0.0.0.0:9090"}, refuses: "--admin-listen 0.0.0.0:9090"},
		{name: "admin public with token", args: []string{"--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:9090", "--api-token", "s3cret"}},
		{name: "insisted", args: []string{"--listen", "0.0.0.0:8080", "--insecure-public-stats"}},
		{name: "insisted from env", args: []string{"--listen", "0.0.0.0:8080"}, env: map[string]string{"RUNG_INSECURE_PUBLIC_STATS": "true"}},
		{name: "cluster collector", args: []string{"--listen", "0.0.0.0:8080", "--nats", "nats://127.0.0.1:4222"}, refuses: "--listen 0.0.0.0:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			err := runServe(context.Background(), append(tt.args, "--dry-run"), env, io.Discard)
			if tt.refuses == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("started with its private surfaces open")
			}
			for _, want := range append([]string{tt.refuses}, refused...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q: %v", want, err)
				}
			}
		})
	}
}
