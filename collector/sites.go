package collector

import (
	"fmt"
	"net/url"
	"strings"
)

// Sites is the allow-list of the sites rung collects for. Empty allows every site.
// For each site, the origins allowed to post its signals: the ones listed, or when none
// is listed, the site's own host and its subdomains over http(s).
type Sites map[string][]string

// ParseSites reads "example.com,shop.example=https://shop.example|https://www.shop.example".
func ParseSites(s string) (Sites, error) {
	sites := Sites{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		site, origins, _ := strings.Cut(part, "=")
		if site == "" {
			return nil, fmt.Errorf("site entry %q: empty site", part)
		}
		var list []string
		for _, o := range strings.Split(origins, "|") {
			if o = strings.TrimSuffix(strings.TrimSpace(o), "/"); o == "" {
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
				return nil, fmt.Errorf("site %s: origin %q: want scheme://host[:port]", site, o)
			}
			list = append(list, o)
		}
		sites[site] = list
	}
	return sites, nil
}

// allows reports whether origin (empty: the request had none) may post for site.
func (s Sites) allows(site string, origin []byte) (known, ok bool) {
	if len(s) == 0 {
		return true, true
	}
	origins, known := s[site]
	if !known {
		return false, false
	}
	if len(origin) == 0 {
		return true, true // a server-to-server post: nothing to check against
	}
	if len(origins) > 0 {
		for _, o := range origins {
			if o == string(origin) {
				return true, true
			}
		}
		return true, false
	}
	host := string(origin)
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return true, host == site || strings.HasSuffix(host, "."+site)
}
