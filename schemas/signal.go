package schemas

import "unsafe"

// Type is a signal's kind.
type Type uint8

const (
	TypeUnknown Type = iota
	TypePageview
	TypeEvent
	TypeExposure
)

var typeNames = [...]string{"", "pageview", "event", "exposure"}

// String returns the name used on the wire and in the stores.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return ""
}

// ParseType returns the Type named s, or TypeUnknown.
func ParseType(s string) Type {
	switch s {
	case "pageview":
		return TypePageview
	case "event":
		return TypeEvent
	case "exposure":
		return TypeExposure
	}
	return TypeUnknown
}

// Signal is one accepted telemetry signal as rung stores it. Decoded, its strings
// mostly point into the request body, memory the HTTP server reuses once the request is
// answered, so a Signal is cheap to make; whatever keeps one longer keeps a copy (the
// buffer copies it into memory of its own).
type Signal struct {
	Type       Type
	Bot        bool
	HasValue   bool
	ReceivedAt int64 // Unix milliseconds, set by the collector
	// EventAt is the signal's event time, Unix milliseconds: where it stands in its
	// visitor's timeline (see EventTime). The sessionizer may move it later (package
	// preagg: late signals); the store keeps the value it was counted at.
	EventAt int64
	// Seq is the signal's arrival sequence (see Sequence): it orders signals with the
	// same EventAt, in request order and then across requests.
	Seq         uint64
	Value       float64
	Site        string
	AnonymousID string
	EventID     string // client-made when present, else made by the collector
	URL         string
	Path        string // the URL's path, without query or fragment
	Referrer    string
	UTMSource   string
	UTMMedium   string
	UTMCampaign string
	UTMTerm     string
	UTMContent  string
	Name        string // event name (type event)
	Experiment  string // type exposure
	Variant     string // type exposure
	Props       string // compact JSON object, or "" when absent
}

// At returns the signal's event time: EventAt, or the receive time for a signal made
// without one (by other code than the decoder, which always sets it).
func (s *Signal) At() int64 {
	if s.EventAt == 0 {
		return s.ReceivedAt
	}
	return s.EventAt
}

// signalOverhead is what a Signal costs beyond its strings' bytes: the struct itself.
const signalOverhead = int(unsafe.Sizeof(Signal{}))

// Size is the Signal's memory footprint in bytes: the struct and its strings.
func (s *Signal) Size() int { return signalOverhead + s.StringBytes() }

// StringBytes is the length of the Signal's strings together.
func (s *Signal) StringBytes() int {
	return len(s.Site) + len(s.AnonymousID) + len(s.EventID) + len(s.URL) +
		len(s.Path) + len(s.Referrer) + len(s.UTMSource) + len(s.UTMMedium) + len(s.UTMCampaign) +
		len(s.UTMTerm) + len(s.UTMContent) + len(s.Name) + len(s.Experiment) + len(s.Variant) + len(s.Props)
}
