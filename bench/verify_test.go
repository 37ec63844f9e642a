package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// apiFor makes the stats API answers that report exactly the truth, for tests to edit.
func apiFor(t *testing.T, tr *Truth) (*apiExperiment, *apiLanding) {
	t.Helper()
	var vs, ps []string
	c := tr.Variants[0]
	for i, v := range tr.Variants {
		cvr := float64(v.Converted) / float64(v.Visitors)
		raw := `{"name":"` + v.Name + `","visitors":` + itoa(v.Visitors) + `,"converted":` + itoa(v.Converted) + `,"cvr":` + ftoa(cvr)
		if i > 0 {
			lift := cvr/(float64(c.Converted)/float64(c.Visitors)) - 1
			raw += `,"lift":{"relative":` + ftoa(lift) + `,"ci":{"low":` + ftoa(lift-0.1) + `,"high":` + ftoa(lift+0.1) + `}}`
		}
		vs = append(vs, raw+"}")
	}
	for _, p := range tr.Landing {
		ps = append(ps, `{"path":"`+p.Path+`","sessions":`+itoa(p.Sessions)+`,"converted":`+itoa(p.Converted)+
			`,"cvr":`+ftoa(float64(p.Converted)/float64(p.Sessions))+`}`)
	}
	exp, land := &apiExperiment{}, &apiLanding{}
	if err := json.Unmarshal([]byte(`{"control":"`+c.Name+`","variants":[`+strings.Join(vs, ",")+`]}`), exp); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"pages":[`+strings.Join(ps, ",")+`]}`), land); err != nil {
		t.Fatal(err)
	}
	return exp, land
}

func itoa(n int64) string   { b, _ := json.Marshal(n); return string(b) }
func ftoa(f float64) string { b, _ := json.Marshal(f); return string(b) }

// TestJudge: the stats check passes an API that tells the truth and fails one that does
// not, whether it miscounts or reports rates the model makes implausible.
func TestJudge(t *testing.T) {
	m := DefaultModel(1, "judge1")
	e := m.Expect()
	truth := func() *Truth {
		// 20,000 visitors in each arm near the true rates, pages near the population's.
		return &Truth{
			Sessions: 50_000, Converted: 2_600,
			Variants: []VariantCount{{"control", 20_000, 1_010}, {"bold_cta", 20_000, 1_190}},
			Landing:  []LandingTruth{{"/", 30_000, 1_570}, {"/pricing", 20_000, 1_030}},
		}
	}
	for _, c := range []struct {
		name  string
		edit  func(tr *Truth, exp *apiExperiment, land *apiLanding)
		model bool
		want  string // "" no problem; else a substring of one
	}{
		{"the truth", nil, true, ""},
		{"a visitor short", func(tr *Truth, exp *apiExperiment, land *apiLanding) { exp.Variants[1].Visitors-- }, true, `variant "bold_cta": API says 19999 visitors`},
		{"a conversion too many on a page", func(tr *Truth, exp *apiExperiment, land *apiLanding) { land.Pages[0].Converted++ }, true, `landing page "/": API says 30000 sessions, 1571 converted`},
		{"a page the run never sent", func(tr *Truth, exp *apiExperiment, land *apiLanding) {
			land.Pages = append(land.Pages, land.Pages[0])
			land.Pages[2].Path = "/elsewhere"
		}, true, `"/elsewhere": API says 30000 sessions; the run sent none`},
		{"uncertain visitors excuse small differences", func(tr *Truth, exp *apiExperiment, land *apiLanding) {
			tr.Uncertain = 2
			exp.Variants[0].Visitors += 2
		}, true, ""},
		{"a CVR the model makes implausible", func(tr *Truth, exp *apiExperiment, land *apiLanding) {
			tr.Variants[0].Converted, exp.Variants[0].Converted, exp.Variants[0].CVR = 1_400, 1_400, 0.07
		}, true, `variant "control": CVR 0.0700 (1400 of 20000) is implausible at the true 0.0500`},
		{"a small page's unlucky draw", func(tr *Truth, exp *apiExperiment, land *apiLanding) {
			// 6 of 33 at about 5%: 3.3 normal standard errors out, a 1-in-77 event, which
			// with nine checks a run would meet often (a CI run did).
			tr.Landing = append(tr.Landing, LandingTruth{"/customers", 33, 6})
			land.Pages = append(land.Pages, land.Pages[0])
			land.Pages[2].Path, land.Pages[2].Sessions, land.Pages[2].Converted, land.Pages[2].CVR = "/customers", 33, 6, 6.0/33
		}, true, ""},
		{"a lift outside the model's tolerance", func(tr *Truth, exp *apiExperiment, land *apiLanding) {
			l := 0.6
			exp.Variants[1].Lift.Relative = &l
		}, true, `variant "bold_cta": lift +0.6000 is outside`},
		{"without the model only counts are judged", func(tr *Truth, exp *apiExperiment, land *apiLanding) {
			tr.Variants[0].Converted, exp.Variants[0].Converted, exp.Variants[0].CVR = 1_400, 1_400, 0.07
		}, false, ""},
		{"another control", func(tr *Truth, exp *apiExperiment, land *apiLanding) { exp.Control = "bold_cta" }, true, `takes "bold_cta" as the control`},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := truth()
			exp, land := apiFor(t, tr)
			if c.edit != nil {
				c.edit(tr, exp, land)
			}
			_, rows, problems := judge(exp, land, tr, &m, &e, 3.29, c.model)
			got := strings.Join(problems, "\n")
			switch {
			case c.want == "" && got != "":
				t.Errorf("problems:\n%s", got)
			case c.want != "" && !strings.Contains(got, c.want):
				t.Errorf("problems:\n%s\nwant one containing %q", got, c.want)
			}
			if len(rows) != 2 || rows[1].TrueLift != e.Variants[1].Lift {
				t.Errorf("variant rows %+v", rows)
			}
		})
	}
}

// TestBinomialP checks the exact two-sided p-values against sums done apart (Python,
// in log space), from a short run's landing page to an arm of 20,000.
func TestBinomialP(t *testing.T) {
	for _, c := range []struct {
		n, k int64
		p    float64
		want float64
	}{
		{33, 6, 0.052, 0.013007601523611773}, // 3.3 normal standard errors out, yet 1 in 77
		{20000, 950, 0.05, 0.10654887333624766},
		{20000, 1100, 0.05, 0.0014510858508332458},
		{100, 0, 0.05, 0.011841058440668045},
		{100, 5, 0.05, 1},
		{0, 0, 0.05, 1},
	} {
		if got := binomialP(c.n, c.k, c.p); math.Abs(got-c.want) > 1e-9*max(c.want, 1e-300) && math.Abs(got-c.want) > 1e-12 {
			t.Errorf("binomialP(%d, %d, %v) = %v, want %v", c.n, c.k, c.p, got, c.want)
		}
	}
}

// TestLevels: the whole check's level is split between its checks.
func TestLevels(t *testing.T) {
	tr := &Truth{
		Variants: []VariantCount{{"control", 100, 5}, {"bold_cta", 100, 6}, {"empty", 0, 0}},
		Landing:  []LandingTruth{{"/", 150, 7}, {"/pricing", 50, 4}},
	}
	checks, zEach := levels(tr, 3.29) // 2 pages, 2 variants, 1 lift
	if alpha := math.Erfc(zEach/math.Sqrt2) * float64(checks); checks != 5 || math.Abs(alpha-math.Erfc(3.29/math.Sqrt2)) > 1e-9 {
		t.Errorf("levels = %d checks at z %.3f (family level %.6f)", checks, zEach, alpha)
	}
}
