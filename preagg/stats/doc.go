// Package stats is the read side of the pre-aggregated numbers: Queries reads the
// rollups the sessionizer (package preagg) wrote back through a Reader, both sinks
// being one, and puts statistics on them: landing-page CVR with Wilson intervals,
// variant lift with a z-test, a sequential interval and a sample-ratio check, and the
// referrers that brought a page its sessions. It writes nothing and knows nothing of
// how the rollups are made, only what they mean.
package stats
