// Package bench owns `rung bench`: a load generator that behaves like a fleet of
// browsers, measures latency honestly, and verifies end to end what landed. It talks to
// rung the way a user does — POST /collect over HTTP, the stats API over HTTP, the
// sink over SQL with its own read-only queries (OpenStore), which run no DDL — and
// knows nothing of the server's internals: it imports none of rung's packages.
//
// # The workload
//
// Model is simulated traffic with a known truth: visitors land on a page from a mix
// of campaigns (utm values in the landing URL), read a few pages with think times, click
// calls to action, return for further sessions after 30 minutes or more, are exposed to
// an experiment whose variants convert at set true rates, and convert by submitting the
// signup form. Each visitor is a pure function of (seed, visitor number): the signals,
// their event_ids, who converts and in which variant are known before anything is sent.
//
// # What a run can and cannot show
//
// rung stamps received_at itself, and a run lasts minutes, so rung sees every visitor's
// signals seconds apart. Sessions and returns exist in the model's simulated time only:
// rung counts one session per visitor, and the report says so beside the model's count.
// A check of session splitting needs a run longer than the session timeout, which a
// load test is not. What a run does check, whatever its length:
//
//   - every signal rung accepted is stored, by event_id, and nothing else is;
//   - rung's counts — sessions and conversions per landing page, visitors and
//     conversions per variant — equal those the accepted signals make, exactly;
//   - rung's CVRs and lifts lie within the sampling tolerance of the model's true rates
//     at the counts reported (when nothing was refused or lost).
//
// A visitor's landing page is their first pageview, and rung breaks ties within one
// millisecond by path: so the generator never sends a visitor's second pageview in the
// same request as their first, nor within a millisecond of its answer, and keeps a
// visitor's signals in order on one connection. The exact counts then hold for any
// batch size and concurrency.
//
// # The load
//
// Each connection ("lane") interleaves its own visitors. Closed loop, a lane sends its
// next request when the last is answered: the maximum throughput. Open loop, request k
// is due at a fixed time on a schedule of Rate requests/s (after a linear ramp), lanes
// take requests round-robin, and latency is measured from when a request was due, not
// when it could be sent: a stall shows in every request it delayed (coordinated
// omission, corrected as wrk2 does). When the timed phase ends, each lane completes the
// journeys of the visitors it started, untimed, so the truth is about whole journeys.
//
// A closed-loop run drives its connections from one event loop per processor (epoll,
// as wrk does) and an open-loop run from a goroutine per connection; either way a
// request is one write of a prebuilt head and the body, and an answer is parsed from a
// reused buffer (conn): the generator shares the machine with the server it measures,
// and what it spends per request is taken from the server.
//
// Latencies go into Histogram, a log-linear histogram (HdrHistogram's layout) whose
// quantiles overstate by at most RelativeError and never understate.
package bench
