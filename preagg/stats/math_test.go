package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.6g, want %.6g (±%g)", what, got, want, tol)
	}
}

// Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table
// I, method 3 (Wilson score without continuity correction), to the 4 decimals printed.
func TestWilsonNewcombe(t *testing.T) {
	for _, c := range []struct {
		x, n      int64
		low, high float64
	}{
		{81, 263, 0.2553, 0.3662},
		{15, 148, 0.0624, 0.1605},
		{0, 20, 0, 0.1611},
		{1, 29, 0.0061, 0.1718},
		{29, 29, 0.8830, 1},
	} {
		ci := Wilson(c.x, c.n, Z95)
		near(t, "low", ci.Low, c.low, 0.00005)
		near(t, "high", ci.High, c.high, 0.00005)
	}
	if ci := Wilson(0, 0, Z95); ci != (Interval{0, 1}) {
		t.Errorf("Wilson(0, 0) = %v, want [0, 1]", ci)
	}
}

// Agresti, "Categorical Data Analysis" (2nd ed., §2.2 and §3.1): the Physicians' Health
// Study, myocardial infarction in 189 of 11,034 on placebo and 104 of 11,037 on
// aspirin. Pearson's X² = 25.01, relative risk 1.82 with 95% interval (1.43, 2.30).
func TestAspirinAgresti(t *testing.T) {
	z, p, ok := ZTest(189, 11034, 104, 11037)
	if !ok {
		t.Fatal("ZTest undefined")
	}
	near(t, "z²", z*z, 25.01, 0.005)
	// Independently: Pearson's X² on the 2×2 table, and its df=1 tail erfc(sqrt(x/2)).
	a, b, c, d := 189.0, 11034.0-189, 104.0, 11037.0-104
	n := a + b + c + d
	x2 := n * (a*d - b*c) * (a*d - b*c) / ((a + b) * (c + d) * (a + c) * (b + d))
	near(t, "z² against X²", z*z, x2, 1e-9)
	near(t, "p", p, math.Erfc(math.Sqrt(x2/2)), 1e-15)
	near(t, "p (to 3 digits)", p, 5.69e-7, 0.005e-7)

	lift, ci, ok := LiftInterval(189, 11034, 104, 11037, Z95)
	if !ok {
		t.Fatal("LiftInterval undefined")
	}
	near(t, "relative risk", lift+1, 1.82, 0.005)
	near(t, "low", ci.Low+1, 1.43, 0.005)
	near(t, "high", ci.High+1, 2.30, 0.01)
	if _, _, ok := LiftInterval(0, 10, 3, 10, Z95); ok {
		t.Error("a lift interval with no conversions in an arm should be undefined")
	}
	if _, _, ok := ZTest(0, 10, 0, 10); ok {
		t.Error("a z-test without variance should be undefined")
	}
}

// The chi-square tail: textbook critical values (p = 0.05 and 0.001), the closed forms
// for df = 1, 2, 4, and Kohavi, Tang & Xu, "Trustworthy Online Controlled Experiments"
// (ch. 21): 821,588 vs 815,482 users in a 50/50 experiment is a sample-ratio mismatch
// with p ≈ 1.8e-6.
func TestChiSquare(t *testing.T) {
	for _, c := range []struct {
		x  float64
		df int
		p  float64
	}{
		{3.841, 1, 0.05}, {5.991, 2, 0.05}, {7.815, 3, 0.05}, {9.488, 4, 0.05},
		{11.070, 5, 0.05}, {18.307, 10, 0.05}, {10.828, 1, 0.001}, {13.816, 2, 0.001},
		{16.266, 3, 0.001},
	} {
		near(t, "critical value tail", ChiSquareSF(c.x, c.df), c.p, c.p*0.002)
	}
	for _, x := range []float64{0.01, 0.5, 1, 2.5, 7, 20, 60} {
		near(t, "df=1", ChiSquareSF(x, 1), math.Erfc(math.Sqrt(x/2)), 1e-12)
		near(t, "df=2", ChiSquareSF(x, 2), math.Exp(-x/2), 1e-12)
		near(t, "df=4", ChiSquareSF(x, 4), math.Exp(-x/2)*(1+x/2), 1e-12)
	}
	chi2, df, p, ok := ChiSquareTest([]int64{821588, 815482}, []float64{1, 1})
	if !ok || df != 1 {
		t.Fatalf("ChiSquareTest: ok=%v df=%d", ok, df)
	}
	near(t, "SRM chi²", chi2, 22.77, 0.005)
	near(t, "SRM p", p, 1.8e-6, 0.05e-6)
	// Unequal weights: 2/1 expected, observed exactly so.
	if _, _, p, _ := ChiSquareTest([]int64{2000, 1000}, []float64{2, 1}); p != 1 {
		t.Errorf("observed = expected: p = %v, want 1", p)
	}
	if _, _, _, ok := ChiSquareTest([]int64{5}, []float64{1}); ok {
		t.Error("one group has no chi-square test")
	}
}

// The sequential interval against its definition: at each end the mixture likelihood
// ratio equals 1/α, found here by bisection instead of the closed form.
func TestSequentialIntervalDefinition(t *testing.T) {
	const alpha, tau2 = 0.05, 1e-4
	for _, c := range [][4]int64{{120, 1000, 100, 1000}, {5200, 100000, 5000, 100000}, {3, 40, 9, 40}} {
		ci, ok := SequentialInterval(c[0], c[1], c[2], c[3], alpha, tau2)
		if !ok {
			t.Fatalf("%v: undefined", c)
		}
		pt, pc := float64(c[0])/float64(c[1]), float64(c[2])/float64(c[3])
		v := pt*(1-pt)/float64(c[1]) + pc*(1-pc)/float64(c[3])
		d := pt - pc
		lr := func(theta float64) float64 { // Λ(d - θ)
			e := d - theta
			return math.Sqrt(v/(v+tau2)) * math.Exp(tau2*e*e/(2*v*(v+tau2)))
		}
		hi, lo := d, d+10 // Λ < 1/α at d, > 1/α far above
		for i := 0; i < 200; i++ {
			m := (hi + lo) / 2
			if lr(m) < 1/alpha {
				hi = m
			} else {
				lo = m
			}
		}
		near(t, "upper end", ci.High, hi, 1e-12)
		near(t, "symmetric", d-ci.Low, ci.High-d, 1e-12)
		fixed := Z95 * math.Sqrt(v)
		if ci.High-d <= fixed {
			t.Errorf("%v: the always-valid half-width %.4g is not wider than the fixed-horizon %.4g", c, ci.High-d, fixed)
		}
	}
}

// Peeking: A/A experiments looked at after every day, stopped at the first look whose
// interval excludes 0. The fixed-horizon 95% interval then "finds" an effect far more
// often than 5%; the always-valid interval stays within its 5%.
func TestSequentialIntervalSurvivesPeeking(t *testing.T) {
	const (
		experiments = 400
		looks       = 30
		perLook     = 200
		rate        = 0.1
	)
	r := rand.New(rand.NewPCG(1, 2))
	fixedFalse, seqFalse := 0, 0
	for e := 0; e < experiments; e++ {
		var xt, nt, xc, nc int64
		fixedHit, seqHit := false, false
		for l := 0; l < looks; l++ {
			for i := 0; i < perLook; i++ {
				nt++
				nc++
				if r.Float64() < rate {
					xt++
				}
				if r.Float64() < rate {
					xc++
				}
			}
			if _, p, ok := ZTest(xt, nt, xc, nc); ok && p < 0.05 {
				fixedHit = true
			}
			if ci, ok := SequentialInterval(xt, nt, xc, nc, 0.05, 1e-4); ok && !ci.Contains(0) {
				seqHit = true
			}
		}
		if fixedHit {
			fixedFalse++
		}
		if seqHit {
			seqFalse++
		}
	}
	fixedRate, seqRate := float64(fixedFalse)/experiments, float64(seqFalse)/experiments
	t.Logf("false positives with daily peeking: fixed-horizon %.3f, always-valid %.3f", fixedRate, seqRate)
	if fixedRate < 0.12 {
		t.Errorf("fixed-horizon false positive rate %.3f: peeking should inflate it well past 5%%", fixedRate)
	}
	if seqRate > 0.05 {
		t.Errorf("always-valid false positive rate %.3f: above its 5%%", seqRate)
	}
}
