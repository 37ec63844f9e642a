package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/rungdev/rung/schemas"
)

// QuarantineHandler serves GET /v1/quarantine?site=&limit= (default 100, at most 1000):
// the newest rejected signals kept by --quarantine, so a site's owner can see what their
// tracker gets wrong. It is a private surface.
func QuarantineHandler(read func(ctx context.Context, site string, limit int) ([]schemas.Quarantined, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			w.WriteHeader(http.StatusMethodNotAllowed)
			json.NewEncoder(w).Encode(map[string]string{"error": "use GET"})
			return
		}
		limit := 100
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]string{"error": "limit must be a number from 1 to 1000"})
				return
			}
			limit = n
		}
		rows, err := read(r.Context(), r.URL.Query().Get("site"), limit)
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"error": "the quarantine cannot be read now"})
			return
		}
		if rows == nil {
			rows = []schemas.Quarantined{}
		}
		json.NewEncoder(w).Encode(map[string]any{"signals": rows})
	})
}
