package stitch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client reads attribution from a rung server over HTTP, for a business backend that
// runs apart from rung: GET {BaseURL}/v1/visitors/{anonymous_id}/attribution.
type Client struct {
	BaseURL string       // e.g. "http://127.0.0.1:8080"
	Token   string       // sent as a Bearer token when set
	HTTP    *http.Client // http.DefaultClient when nil
}

// Attribution has Lookup.Attribution's contract: empty id or unknown visitor → empty
// attribution; malformed id → ErrInvalidAnonymousID (checked before any request).
func (c *Client) Attribution(ctx context.Context, anonymousID string) (Attribution, error) {
	if anonymousID == "" {
		return Attribution{}, nil
	}
	if !ValidAnonymousID(anonymousID) {
		return Attribution{}, fmt.Errorf("%w: %q must be 8–64 characters of [A-Za-z0-9_-]", ErrInvalidAnonymousID, anonymousID)
	}
	u := strings.TrimSuffix(c.BaseURL, "/") + "/v1/visitors/" + url.PathEscape(anonymousID) + "/attribution"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Attribution{}, fmt.Errorf("%w: build request: %w", ErrSignals, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Attribution{}, fmt.Errorf("%w: GET %s: %w", ErrSignals, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Attribution{}, fmt.Errorf("%w: GET %s: read: %w", ErrSignals, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Attribution{}, fmt.Errorf("%w: GET %s: %s: %s", ErrSignals, u, resp.Status, strings.TrimSpace(string(body)))
	}
	var a Attribution
	if err := json.Unmarshal(body, &a); err != nil {
		return Attribution{}, fmt.Errorf("%w: GET %s: decode: %w", ErrSignals, u, err)
	}
	return a, nil
}
