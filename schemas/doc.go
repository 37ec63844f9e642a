// Package schemas owns the contract of every signal and business event: the JSON Schemas
// (embedded, versioned, served read-only), the Registry that compiles them once, the
// request decoder that turns a /collect body into Signals, and where a signal stands in
// its visitor's order: its event time (EventTime, from the client's ts and sent_at) and
// its arrival sequence (Sequence), both set by the decoder.
//
// Validation has two paths and one source. jsonschema/v5 compiles the schema files, with
// every pattern given its ECMA-262 meaning (the draft-07 schemas' dialect, where Go's
// regexp reads \s differently); the fast path's rules are built from that compiled form.
// The fast path parses the body with a zero-allocation scanner and checks those rules;
// it decides accept or reject. jsonschema/v5 is the oracle: it runs only on the first
// few rejected signals of a body (MaxExplained), to produce the detailed report (JSON
// pointer and message), and a differential fuzz test proves the two agree. A schema
// keyword the fast path does not understand fails compilation at start, so the two can
// never silently diverge.
package schemas
