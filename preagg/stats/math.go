package stats

import "math"

// Z95 is the two-sided 95% quantile of the standard normal distribution.
const Z95 = 1.959963984540054

// Interval is a confidence interval.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Contains reports whether x lies in the interval.
func (i Interval) Contains(x float64) bool { return i.Low <= x && x <= i.High }

// Wilson returns the Wilson score interval of x successes in n trials at quantile z
// (Wilson 1927; Newcombe 1998, method 3). Unlike the Wald interval it stays inside
// [0, 1] and is honest at small counts and rates near 0 or 1. With n = 0 it is [0, 1].
func Wilson(x, n int64, z float64) Interval {
	if n <= 0 {
		return Interval{0, 1}
	}
	nf := float64(n)
	p := float64(x) / nf
	z2 := z * z
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := z / den * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return Interval{max(0, center-half), min(1, center+half)}
}

// NormalSF is the upper tail of the standard normal distribution, P(Z > x).
func NormalSF(x float64) float64 { return 0.5 * math.Erfc(x/math.Sqrt2) }

// ZTest is the two-proportion z-test with a pooled variance: z for treatment minus
// control, and its two-sided p-value. ok is false when it is undefined (an empty arm, or
// no variance: every visitor converted or none did).
func ZTest(xt, nt, xc, nc int64) (z, p float64, ok bool) {
	if nt <= 0 || nc <= 0 {
		return 0, 0, false
	}
	pt, pc := float64(xt)/float64(nt), float64(xc)/float64(nc)
	pool := float64(xt+xc) / float64(nt+nc)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(nt) + 1/float64(nc)))
	if se == 0 {
		return 0, 0, false
	}
	z = (pt - pc) / se
	return z, 2 * NormalSF(math.Abs(z)), true
}

// LiftInterval returns the relative lift of treatment over control, pt/pc - 1, and its
// confidence interval at quantile z from the log of the risk ratio (Katz et al. 1978):
// ln(pt/pc) ± z·sqrt(1/xt - 1/nt + 1/xc - 1/nc). ok is false when it is undefined (no
// conversions in an arm).
func LiftInterval(xt, nt, xc, nc int64, z float64) (lift float64, ci Interval, ok bool) {
	if xt <= 0 || xc <= 0 || nt <= 0 || nc <= 0 {
		return 0, Interval{}, false
	}
	rr := (float64(xt) / float64(nt)) / (float64(xc) / float64(nc))
	se := math.Sqrt(1/float64(xt) - 1/float64(nt) + 1/float64(xc) - 1/float64(nc))
	l := math.Log(rr)
	return rr - 1, Interval{math.Exp(l-z*se) - 1, math.Exp(l+z*se) - 1}, true
}

// SequentialInterval is an always-valid confidence interval for the difference of two
// proportions, pt - pc: the mixture sequential probability ratio test of Johari,
// Pekelis and Walsh ("Always valid inference", 2017, the normal mixture of Robbins
// 1970) with mixing variance tau2. Whatever the stopping rule — looking every day and
// stopping at the first interval that excludes 0 — the interval covers the true
// difference with probability at least 1 - alpha. It is
//
//	d ± sqrt( V(V+τ²)/τ² · (2 ln(1/α) + ln((V+τ²)/V)) ),  V = pt(1-pt)/nt + pc(1-pc)/nc,
//
// the set of differences θ at which the mixture likelihood ratio of d - θ stays below
// 1/α. ok is false when V is 0.
func SequentialInterval(xt, nt, xc, nc int64, alpha, tau2 float64) (Interval, bool) {
	if nt <= 0 || nc <= 0 || alpha <= 0 || alpha >= 1 || tau2 <= 0 {
		return Interval{}, false
	}
	pt, pc := float64(xt)/float64(nt), float64(xc)/float64(nc)
	v := pt*(1-pt)/float64(nt) + pc*(1-pc)/float64(nc)
	if v <= 0 {
		return Interval{}, false
	}
	half := math.Sqrt(v * (v + tau2) / tau2 * (2*math.Log(1/alpha) + math.Log((v+tau2)/v)))
	d := pt - pc
	return Interval{d - half, d + half}, true
}

// ChiSquareTest is Pearson's goodness-of-fit test of observed counts against expected
// weights (any positive scale): the statistic, its degrees of freedom and p-value. It is
// how a sample-ratio mismatch is found. ok is false with fewer than two groups, no
// observations or a weight that is not positive.
func ChiSquareTest(observed []int64, weights []float64) (chi2 float64, df int, p float64, ok bool) {
	if len(observed) < 2 || len(observed) != len(weights) {
		return 0, 0, 0, false
	}
	var n int64
	var w float64
	for i, o := range observed {
		if weights[i] <= 0 || math.IsNaN(weights[i]) || math.IsInf(weights[i], 0) {
			return 0, 0, 0, false
		}
		n += o
		w += weights[i]
	}
	if n == 0 {
		return 0, 0, 0, false
	}
	for i, o := range observed {
		e := float64(n) * weights[i] / w
		d := float64(o) - e
		chi2 += d * d / e
	}
	df = len(observed) - 1
	return chi2, df, ChiSquareSF(chi2, df), true
}

// ChiSquareSF is the upper tail of the chi-square distribution with df degrees of
// freedom: Q(df/2, x/2), the regularized upper incomplete gamma function.
func ChiSquareSF(x float64, df int) float64 {
	if x <= 0 {
		return 1
	}
	return gammaQ(float64(df)/2, x/2)
}

// gammaQ is the regularized upper incomplete gamma function Q(a, x), by its series
// below a+1 and its continued fraction (modified Lentz) above, as in Numerical Recipes
// §6.2.
func gammaQ(a, x float64) float64 {
	const (
		eps   = 1e-15
		tiny  = 1e-300
		steps = 1000
	)
	lg, _ := math.Lgamma(a)
	front := math.Exp(-x + a*math.Log(x) - lg)
	if x < a+1 {
		ap, sum := a, 1/a
		del := sum
		for i := 0; i < steps; i++ {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*eps {
				break
			}
		}
		return max(0, 1-sum*front)
	}
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < steps; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return front * h
}
