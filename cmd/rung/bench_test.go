package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBenchRefusedToken: against a rung serve with --api-token, a bench without the
// token fails before it sends any load, with the message that says what to do — not
// after the run and the whole verification wait.
func TestBenchRefusedToken(t *testing.T) {
	p := startServe(t, "--api-token", "s3cret")
	for _, tc := range []struct{ name, token, says string }{
		{"no token", "", "give the stats API's token (--api-token)"},
		{"a wrong token", "nope", "is not the one rung serve runs with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"bench", "--target", p.url(""), "--duration", "5s", "--quiet", "--verify-wait", "60s"}
			if tc.token != "" {
				args = append(args, "--api-token", tc.token)
			}
			code := cli(context.Background(), args, envMap(nil), &stdout, &stderr)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstderr: %s", code, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("a report was written, so the load ran:\n%s", stdout.String())
			}
			msg := stderr.String()
			if !strings.Contains(msg, "refused by the server") || !strings.Contains(msg, "answered 401") || !strings.Contains(msg, tc.says) {
				t.Errorf("stderr %q lacks the refusal and %q", msg, tc.says)
			}
			if n := strings.Count(strings.TrimSpace(msg), "\n"); n != 0 {
				t.Errorf("the message is %d lines, want one:\n%s", n+1, msg)
			}
		})
	}
}
