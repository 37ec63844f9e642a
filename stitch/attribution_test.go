package stitch

import (
	"reflect"
	"testing"
	"time"

	"github.com/rungdev/rung/schemas"
)

const visitor = "visitor-0001"

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func ms(d time.Duration) int64 { return t0.Add(d).UnixMilli() }

func pv(at time.Duration, url, path, ref string, utm ...string) schemas.Signal {
	s := schemas.Signal{Type: schemas.TypePageview, ReceivedAt: ms(at), Site: "shop.example", AnonymousID: visitor,
		URL: url, Path: path, Referrer: ref}
	f := []*string{&s.UTMSource, &s.UTMMedium, &s.UTMCampaign, &s.UTMTerm, &s.UTMContent}
	for i, v := range utm {
		*f[i] = v
	}
	return s
}

func exposure(at time.Duration, exp, variant string) schemas.Signal {
	return schemas.Signal{Type: schemas.TypeExposure, ReceivedAt: ms(at), Site: "shop.example", AnonymousID: visitor,
		Experiment: exp, Variant: variant}
}

func event(at time.Duration, name string) schemas.Signal {
	return schemas.Signal{Type: schemas.TypeEvent, ReceivedAt: ms(at), Site: "shop.example", AnonymousID: visitor, Name: name}
}

func TestAttribute(t *testing.T) {
	ad := pv(0, "https://shop.example/pricing?utm_source=google", "/pricing", "https://www.google.com/", "google", "cpc", "spring", "shoes", "ad1")
	adTouch := Touch{Source: "google", Medium: "cpc", Campaign: "spring", Term: "shoes", Content: "ad1",
		Referrer: "https://www.google.com/", LandingPage: "/pricing", At: t0}
	internal := pv(time.Minute, "https://shop.example/signup", "/signup", "https://shop.example/pricing")
	direct := pv(time.Hour, "https://shop.example/", "/", "")
	wwwInternal := pv(2*time.Hour, "https://shop.example/faq", "/faq", "https://www.shop.example/")
	newsletter := pv(3*time.Hour, "https://shop.example/sale?utm_source=newsletter", "/sale", "", "newsletter", "email")
	newsTouch := Touch{Source: "newsletter", Medium: "email", LandingPage: "/sale", At: t0.Add(3 * time.Hour)}
	referral := pv(4*time.Hour, "https://shop.example/blog", "/blog", "https://news.example.org/story")
	refTouch := Touch{Referrer: "https://news.example.org/story", LandingPage: "/blog", At: t0.Add(4 * time.Hour)}

	tests := []struct {
		name    string
		signals []schemas.Signal
		want    Attribution
	}{
		{"never seen", nil, Attribution{AnonymousID: visitor}},
		{"one ad click", []schemas.Signal{ad},
			Attribution{AnonymousID: visitor, Site: "shop.example", FirstTouch: adTouch, LastTouch: adTouch, LandingPage: "/pricing", FirstSeen: t0}},
		{"internal and direct visits do not move the last touch", []schemas.Signal{ad, internal, direct, wwwInternal},
			Attribution{AnonymousID: visitor, Site: "shop.example", FirstTouch: adTouch, LastTouch: adTouch, LandingPage: "/pricing", FirstSeen: t0}},
		{"a later campaign is the last touch", []schemas.Signal{ad, internal, newsletter, direct},
			Attribution{AnonymousID: visitor, Site: "shop.example", FirstTouch: adTouch, LastTouch: newsTouch, LandingPage: "/pricing", FirstSeen: t0}},
		{"an external referrer is a touch", []schemas.Signal{ad, newsletter, referral},
			Attribution{AnonymousID: visitor, Site: "shop.example", FirstTouch: adTouch, LastTouch: refTouch, LandingPage: "/pricing", FirstSeen: t0}},
		{"direct only: last touch is the first", []schemas.Signal{direct, internal},
			Attribution{AnonymousID: visitor, Site: "shop.example", FirstTouch: Touch{LandingPage: "/signup", Referrer: "https://shop.example/pricing", At: t0.Add(time.Minute)},
				LastTouch: Touch{LandingPage: "/signup", Referrer: "https://shop.example/pricing", At: t0.Add(time.Minute)}, LandingPage: "/signup", FirstSeen: t0.Add(time.Minute)}},
		{"unsorted input is read in time order", []schemas.Signal{newsletter, ad},
			Attribution{AnonymousID: visitor, Site: "shop.example", FirstTouch: adTouch, LastTouch: newsTouch, LandingPage: "/pricing", FirstSeen: t0}},
		{"first exposure per experiment; first seen is any signal", []schemas.Signal{
			exposure(-time.Minute, "hero", "b"), ad, exposure(time.Minute, "hero", "a"), exposure(2*time.Minute, "cta", "green"),
			exposure(3*time.Minute, "", "x"), event(4*time.Minute, "form_submitted")},
			Attribution{AnonymousID: visitor, Site: "shop.example", FirstTouch: adTouch, LastTouch: adTouch, LandingPage: "/pricing",
				FirstSeen: t0.Add(-time.Minute), Variants: map[string]string{"hero": "b", "cta": "green"}}},
		{"no pageview: variants and first seen only", []schemas.Signal{exposure(0, "hero", "a"), event(time.Second, "form_submitted")},
			Attribution{AnonymousID: visitor, Site: "shop.example", FirstSeen: t0, Variants: map[string]string{"hero": "a"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]schemas.Signal(nil), tc.signals...)
			got := Attribute(visitor, in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Attribute:\n got %+v\nwant %+v", got, tc.want)
			}
			if !reflect.DeepEqual(in, tc.signals) && tc.signals != nil {
				t.Fatal("Attribute modified its input")
			}
			if got.Known() != (len(tc.signals) > 0) {
				t.Fatalf("Known() = %v", got.Known())
			}
		})
	}
}

func TestAttributeCapsVariants(t *testing.T) {
	var signals []schemas.Signal
	for i := range 60 {
		signals = append(signals, exposure(time.Duration(i)*time.Second, "exp"+string(rune('A'+i)), "a"))
	}
	a := Attribute(visitor, signals)
	if len(a.Variants) != maxVariants || a.Variants["expA"] != "a" {
		t.Fatalf("%d variants kept; want the first %d", len(a.Variants), maxVariants)
	}
}

func BenchmarkAttribute(b *testing.B) {
	signals := []schemas.Signal{
		pv(0, "https://shop.example/pricing?utm_source=google", "/pricing", "https://www.google.com/", "google", "cpc"),
		exposure(time.Second, "hero", "b"), pv(time.Minute, "https://shop.example/signup", "/signup", "https://shop.example/pricing"),
		pv(time.Hour, "https://shop.example/", "/", ""), event(time.Hour+time.Second, "form_submitted"),
	}
	b.ReportAllocs()
	for b.Loop() {
		Attribute(visitor, signals)
	}
}
