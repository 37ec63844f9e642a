package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fasthttp"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/schemas"
)

// Per-signal rejection reasons of the collector's own, beside the decoder's.
const (
	reasonShutdown    = "shutting_down"
	reasonUnknownSite = "unknown_site"
	reasonOrigin      = "origin"
	reasonBot         = "bot"
	reasonRateSite    = "rate_site"
)

// collect answers POST /collect: the hot path. It allocates nothing for a request of
// signals that carry their own event_id (the intake copies what it keeps), only an
// event_id for each signal that came without one and a verdict for a user agent the
// bot cache does not hold.
func (s *Server) collect(ctx *fasthttp.RequestCtx) {
	if !s.cors(ctx) {
		s.fail(ctx, fasthttp.StatusForbidden, "origin", "origin not allowed")
		return
	}
	switch {
	case ctx.IsPost():
	case ctx.IsOptions():
		// Preflight: answered from the headers alone; the body is never read.
		h := &ctx.Response.Header
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		s.requests[fasthttp.StatusNoContent].Inc()
		return
	default:
		ctx.Response.Header.Set("Allow", "POST, OPTIONS")
		s.fail(ctx, fasthttp.StatusMethodNotAllowed, "method", "use POST")
		return
	}
	if s.rateIP != nil {
		now := time.Now()
		if ok, wait := s.rateIP.take(s.salt.sum(ctx.RemoteIP().To16(), now), 1, now); !ok {
			if s.cfg.RateIPDelay > 0 {
				// A flood that waits for its answers (most do) slows to one request per
				// delay per connection, so its refusals stop costing CPU.
				time.Sleep(s.cfg.RateIPDelay)
			}
			ctx.Response.Header.Set("Retry-After", retryAfter(wait))
			s.fail(ctx, fasthttp.StatusTooManyRequests, "rate_ip", "too many requests from this address")
			return
		}
	}
	if !contentTypeOK(ctx.Request.Header.ContentType()) {
		s.fail(ctx, fasthttp.StatusUnsupportedMediaType, "content_type",
			"content type must be application/json or text/plain")
		return
	}
	if ce := ctx.Request.Header.ContentEncoding(); len(ce) > 0 && !bytes.EqualFold(ce, []byte("identity")) {
		// Never inflate what a client sends: a gzip bomb is 1000x its size.
		s.fail(ctx, fasthttp.StatusUnsupportedMediaType, "content_encoding",
			"content encoding not accepted: send the body uncompressed")
		return
	}
	raw := ctx.PostBody()
	if len(raw) > s.cfg.MaxBodyBytes {
		s.fail(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("body of %d bytes is larger than %d", len(raw), s.cfg.MaxBodyBytes))
		return
	}
	if s.cfg.Admits != nil && !s.cfg.Admits(len(raw)) {
		// Full: refused before any work is spent on the body, so a full buffer costs
		// about what answering costs. The answer is made once, not per refusal.
		s.bodyErrs["buffer_full"].Inc()
		s.requests[fasthttp.StatusServiceUnavailable].Inc()
		ctx.Response.Header.Set("Retry-After", s.retry)
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetContentType("application/json")
		ctx.SetBody(fullAnswer)
		return
	}
	// The signals' strings point into raw, which fasthttp reuses once the handler
	// returns: the intake copies what it keeps, and so does the quarantine.
	body := unsafe.String(unsafe.SliceData(raw), len(raw))

	w := s.pool.Get().(*work)
	defer func() { w.batch.Reset(); s.pool.Put(w) }()
	now := time.Now() // one clock read per request: received_at and the per-site rate
	meta := schemas.Meta{ReceivedAt: now.UnixMilli(), Bot: s.bots.isBot(ctx.Request.Header.UserAgent()), Seq: &s.seq}
	if err := s.reg.Decode(body, meta, s.cfg.MaxBatch, &w.batch); err != nil {
		status, reason := bodyError(err)
		s.quarantine(schemas.Quarantined{At: meta.ReceivedAt, Code: reason, Message: err.Error(), Raw: body})
		s.fail(ctx, status, reason, err.Error())
		return
	}
	b := &w.batch
	s.received.Add(len(b.Signals) + len(b.Rejected))
	for _, r := range b.Rejected {
		s.rejected[r.Code].Inc()
		s.quarantine(schemas.Quarantined{At: meta.ReceivedAt, Site: r.Site, Code: r.Code, Pointer: r.Pointer, Message: r.Reason, Raw: r.Raw})
	}
	accepted, full, limited := 0, 0, time.Duration(0)
	origin := ctx.Request.Header.Peek("Origin")
	w.pending, w.at = w.pending[:0], w.at[:0]
	for i := range b.Signals {
		g := &b.Signals[i]
		if reason := s.refuse(g, origin, now, &limited); reason != "" {
			s.rejected[reason].Inc()
			s.quarantine(schemas.Quarantined{At: meta.ReceivedAt, Site: g.Site, Code: reason, Pointer: refusedPointer(reason), Message: refusedWhy[reason], Raw: b.Raw[i]})
			b.Rejected = append(b.Rejected, schemas.Rejection{Index: b.Index[i], Pointer: refusedPointer(reason), Reason: refusedWhy[reason], Code: reason})
			continue
		}
		w.pending = append(w.pending, g)
		w.at = append(w.at, i)
	}
	if len(w.pending) > 0 {
		w.errs = slices.Grow(w.errs[:0], len(w.pending))[:len(w.pending)]
		clear(w.errs)
		// Not ctx: a RequestCtx is done when the server shuts down, which must drain,
		// not abandon, the writes in flight. The intake bounds its own wait.
		s.intake.Append(context.Background(), w.pending, w.errs)
	}
	for j, err := range w.errs[:len(w.pending)] {
		switch i := w.at[j]; {
		case err == nil, errors.Is(err, buffer.ErrDropped):
			accepted++
		case errors.Is(err, buffer.ErrFull):
			full++ // counted by the intake
			b.Rejected = append(b.Rejected, schemas.Rejection{Index: b.Index[i], Reason: fullReason(err), Code: "buffer_full"})
		default:
			b.Rejected = append(b.Rejected, schemas.Rejection{Index: b.Index[i], Reason: "server shutting down, retry later", Code: reasonShutdown})
			s.rejected[reasonShutdown].Inc()
			full++
		}
	}
	s.accepted.Add(accepted)
	status := fasthttp.StatusAccepted
	switch {
	case accepted > 0:
	case full > 0:
		status = fasthttp.StatusServiceUnavailable
		ctx.Response.Header.Set("Retry-After", s.retry)
	case limited > 0:
		status = fasthttp.StatusTooManyRequests
		ctx.Response.Header.Set("Retry-After", retryAfter(limited))
	default:
		status = fasthttp.StatusBadRequest
	}
	s.requests[status].Inc()
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	w.out = appendResult(w.out[:0], accepted, b.Rejected)
	ctx.SetBody(w.out)
}

// fullAnswer is the answer to a body refused because the buffer is full.
var fullAnswer = errorBody("buffer full, retry later")

// quarantine hands a sample of what was rejected to the quarantine, when there is one.
func (s *Server) quarantine(q schemas.Quarantined) {
	if s.cfg.Quarantine == nil || s.qSeen.Add(1)%uint64(s.cfg.QuarantineSample) != 0 {
		return
	}
	if ok, _ := s.qRate.take(0, 1, time.Now()); ok {
		s.cfg.Quarantine(q)
	}
}

// refuse applies the site allow-list, the bot policy and the per-site rate to one valid
// signal, and names the reason when it is refused.
func (s *Server) refuse(g *schemas.Signal, origin []byte, now time.Time, limited *time.Duration) string {
	if len(s.cfg.Sites) > 0 {
		switch known, ok := s.cfg.Sites.allows(g.Site, origin); {
		case !known:
			return reasonUnknownSite
		case !ok:
			return reasonOrigin
		}
	}
	if s.cfg.DropBots && g.Bot {
		return reasonBot
	}
	if s.rateSite != nil {
		if ok, wait := s.rateSite.take(xxhash.Sum64String(g.Site), 1, now); !ok {
			*limited = max(*limited, wait)
			return reasonRateSite
		}
	}
	return ""
}

var refusedWhy = map[string]string{
	reasonUnknownSite: "rung does not collect for this site",
	reasonOrigin:      "this origin may not post for this site",
	reasonBot:         "signals from automated clients are not collected",
	reasonRateSite:    "too many signals for this site, retry later",
}

func refusedPointer(reason string) string {
	if reason == reasonUnknownSite || reason == reasonOrigin {
		return "/site"
	}
	return ""
}

// fullReason says why a signal could not be stored: the buffer is full, or (in a
// cluster) why JetStream did not take it.
func fullReason(err error) string {
	if errors.Is(err, buffer.ErrFull) && err != buffer.ErrFull {
		return err.Error() + ", retry later"
	}
	return "buffer full, retry later"
}

// retryAfter renders a wait as whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

// appendResult writes {"accepted":n,"rejected":m,"errors":[...]}. Without rejections it
// allocates nothing.
func appendResult(dst []byte, accepted int, rejected []schemas.Rejection) []byte {
	dst = append(dst, `{"accepted":`...)
	dst = strconv.AppendInt(dst, int64(accepted), 10)
	dst = append(dst, `,"rejected":`...)
	dst = strconv.AppendInt(dst, int64(len(rejected)), 10)
	if len(rejected) > 0 {
		dst = append(dst, `,"errors":[`...)
		for i, r := range rejected {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"index":`...)
			dst = strconv.AppendInt(dst, int64(r.Index), 10)
			dst = append(dst, `,"pointer":`...)
			dst = appendJSONString(dst, r.Pointer)
			dst = append(dst, `,"reason":`...)
			dst = appendJSONString(dst, r.Reason)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, "}\n"...)
}

// appendJSONString quotes s as a JSON string, escaping what could break out of one in
// HTML too; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == 0x2028 || r == 0x2029:
			dst = append(dst, '\\', 'u', hexd[r>>12&0xf], hexd[r>>8&0xf], hexd[r>>4&0xf], hexd[r&0xf])
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}

// fail answers a whole-body rejection and counts it by reason.
func (s *Server) fail(ctx *fasthttp.RequestCtx, status int, reason, msg string) {
	if c := s.bodyErrs[reason]; c != nil {
		c.Inc()
	}
	if c := s.requests[status]; c != nil {
		c.Inc()
	}
	answerError(ctx, status, msg)
}

// answerError answers status with errorBody(msg).
func answerError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(errorBody(msg))
}

// errorBody is {"error":msg}: the shape of every error answer of the collector, so a
// client parses one format whatever refused it.
func errorBody(msg string) []byte {
	return append(appendJSONString([]byte(`{"error":`), msg), "}\n"...)
}

func bodyError(err error) (int, string) {
	switch {
	case errors.Is(err, schemas.ErrBatchTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, "batch_too_large"
	case errors.Is(err, schemas.ErrTooDeep):
		return fasthttp.StatusBadRequest, "too_deep"
	case errors.Is(err, schemas.ErrEmpty):
		return fasthttp.StatusBadRequest, "empty"
	case errors.Is(err, schemas.ErrNotSignals):
		return fasthttp.StatusBadRequest, "not_signals"
	}
	return fasthttp.StatusBadRequest, "malformed_json"
}

// contentTypeOK accepts application/json and text/plain (what sendBeacon sends with a
// string body), with any parameters.
func contentTypeOK(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	return bytes.EqualFold(ct, []byte("application/json")) || bytes.EqualFold(ct, []byte("text/plain"))
}

// cors sets the CORS answer for the request's Origin and says whether it is allowed.
// A request without Origin (a server, curl) is allowed.
func (s *Server) cors(ctx *fasthttp.RequestCtx) bool {
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		return true
	}
	h := &ctx.Response.Header
	if s.anyOrigin {
		h.Set("Access-Control-Allow-Origin", "*")
		return true
	}
	if !s.origins[string(origin)] {
		return false
	}
	h.SetBytesV("Access-Control-Allow-Origin", origin)
	h.Set("Vary", "Origin")
	return true
}
