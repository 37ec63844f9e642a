package stitch

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Handler serves GET /v1/visitors/{anonymous_id}/attribution: 200 with the Attribution
// as JSON (empty for a visitor never seen), 400 for a malformed id, 503 when the sink
// cannot be read, 405 for other methods. Mount it at that path or at "/".
func (l *Lookup) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/visitors/{anonymous_id}/attribution", func(w http.ResponseWriter, r *http.Request) {
		a, err := l.Attribution(r.Context(), r.PathValue("anonymous_id"))
		switch {
		case errors.Is(err, ErrInvalidAnonymousID) || err == nil && r.PathValue("anonymous_id") == "":
			if err == nil {
				err = errors.New("anonymous_id is empty")
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		case err != nil:
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		default:
			w.Header().Set("Cache-Control", "no-store")
			writeJSON(w, http.StatusOK, a)
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
