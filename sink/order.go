package sink

import "sort"

// Sort puts the rollups in their canonical order (byte order, as Go compares), so both
// sinks' reads and recomputations compare row by row.
func (r *Rollups) Sort() {
	sort.Slice(r.Sessions, func(i, j int) bool {
		a, b := &r.Sessions[i], &r.Sessions[j]
		if a.Site != b.Site {
			return a.Site < b.Site
		}
		if a.AnonymousID != b.AnonymousID {
			return a.AnonymousID < b.AnonymousID
		}
		return a.StartMs < b.StartMs
	})
	sort.Slice(r.Landing, func(i, j int) bool { return r.Landing[i].LandingKey.Less(&r.Landing[j].LandingKey) })
	sort.Slice(r.Exposures, func(i, j int) bool {
		a, b := &r.Exposures[i], &r.Exposures[j]
		if a.Site != b.Site {
			return a.Site < b.Site
		}
		if a.Experiment != b.Experiment {
			return a.Experiment < b.Experiment
		}
		return a.AnonymousID < b.AnonymousID
	})
}

// Less orders landing keys by site, hour, path and utm values.
func (a *LandingKey) Less(b *LandingKey) bool {
	switch {
	case a.Site != b.Site:
		return a.Site < b.Site
	case a.HourMs != b.HourMs:
		return a.HourMs < b.HourMs
	case a.LandingPath != b.LandingPath:
		return a.LandingPath < b.LandingPath
	case a.UTMSource != b.UTMSource:
		return a.UTMSource < b.UTMSource
	case a.UTMMedium != b.UTMMedium:
		return a.UTMMedium < b.UTMMedium
	}
	return a.UTMCampaign < b.UTMCampaign
}
