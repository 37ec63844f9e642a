// Package snippet owns rung's browser side: t.js, the snippet a site adds with one
// script tag, and the demo site that shows it at work. Both are embedded in the binary
// and served by one standard-library http.Handler that the collector mounts.
//
// t.js is hand-written JavaScript with no build step. At start the handler strips it
// of comments and needless whitespace (minify), hashes it for the versioned URL
// /t.<hash>.js, and gzips it once; requests are then answered from memory.
//
// The demo (/demo/) is a landing page with an A/B headline, a single-page app that
// navigates with history.pushState, and a lead form marked with data-rung-form whose
// submission lands on /demo/lead, which shows the fields a business backend would
// receive, the visitor's anonymous_id among them.
package snippet
