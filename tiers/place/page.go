package place

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

//go:embed templates/page.html
var templateFS embed.FS

// symbol is the matrix's sign for a verdict.
func symbol(v Verdict) string {
	switch v {
	case Valid, Ideal, Required, NoEvents:
		return "✓"
	case Dangerous:
		return "⚠"
	case WrongSource, Contradiction:
		return "✗"
	}
	return ""
}

// markText is a cell as the matrix prints it: "✓ ideal", "✗ wrong src", "N/A", and a
// bare "✓" where the ladder says nothing more.
func markText(c Cell) string {
	s := symbol(c.Verdict)
	if c.Mark == s || s == "" {
		return c.Mark
	}
	return s + " " + c.Mark
}

// verdictText is a result's verdict in words, with the matrix's own mark when it says
// more: "✓ required · floor", "⚠ dangerous", "✓ no events needed".
func verdictText(r *Result) string {
	if r.Verdict == NoEvents {
		return "✓ no events needed"
	}
	return cellText(r.Cell)
}

// cellText is a cell's verdict in words: "✓ required · floor", "not applicable".
func cellText(c Cell) string {
	words := strings.ReplaceAll(string(c.Verdict), "_", " ")
	s := strings.TrimSpace(symbol(c.Verdict) + " " + words)
	switch c.Mark {
	case words, "✓", "N/A", "wrong src":
		return s
	}
	return s + " · " + c.Mark
}

func parsePage(cards map[string]*Card) (*template.Template, error) {
	t, err := template.New("page.html").Funcs(template.FuncMap{
		"mark":       markText,
		"verdict":    verdictText,
		"rowLabel":   RowLabel,
		"levelLabel": LevelLabel,
		"kind":       func(k string) string { return strings.ReplaceAll(k, "_", " ") },
		"title": func(id string) string {
			if c, ok := cards[id]; ok {
				return c.Title()
			}
			return id
		},
	}).ParseFS(templateFS, "templates/page.html")
	if err != nil {
		return nil, fmt.Errorf("parse page template: %w", err)
	}
	return t, nil
}

// field is a hidden form field carrying an earlier answer.
type field struct{ Name, Value string }

type answeredView struct {
	Question Question
	Answer   string
	// Before are the answers given before this one: posting them alone asks this
	// question again.
	Before []field
}

type rungView struct {
	Card *Card
	Here bool
}

type cellView struct {
	Cell
	Here bool
}

type matrixRowView struct {
	Row   Row
	Cells []cellView
	Here  bool
}

type symptomGroup struct {
	Card     *Card
	Symptoms []symptomView
}

type symptomView struct {
	Symptom
	Checked bool
}

type pageData struct {
	Problems []Problem
	Stat     string // the stat's name, when the user gave one

	// The question step.
	Question *Question
	Number   int // 1-based count of this question among those asked
	AtMost   int // how many questions at most remain, this one included
	Answered []answeredView
	Hidden   []field // every valid answer so far

	// The result step.
	Result        *Result
	Tiers         []rungView // top of the ladder first
	Levels        []rungView
	Columns       []Level
	MatrixRows    []matrixRowView
	Footnotes     []string
	SymptomGroups []symptomGroup
	CurrentTier   int
	CurrentLevel  Level
	TierNumbers   []int
	AllLevels     []Level
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "form too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	req, probs := h.e.formRequest(r.Form)
	data := pageData{Problems: probs, Stat: req.Stat}
	status := http.StatusOK
	if len(probs) > 0 {
		status = http.StatusBadRequest
	} else {
		prog := h.e.Progress(req.Answers)
		h.e.fillAnswered(&data, prog)
		if prog.Complete {
			res, err := h.e.Place(req)
			if err != nil {
				var ae *AnswersError
				if !errors.As(err, &ae) {
					h.log.Error("place page", "err", err)
					http.Error(w, "internal error", http.StatusInternalServerError)
					return
				}
				data.Problems, status = ae.Problems, http.StatusBadRequest
			} else {
				h.e.fillResult(&data, &res, req)
			}
		} else {
			q := h.e.questions[h.e.qindex[prog.Next]]
			data.Question = &q
			data.Number = len(data.Answered) + 1
			for _, st := range prog.States {
				if st.State == StateNext || st.State == StateUnanswered || st.State == StatePending {
					data.AtMost++
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := h.e.page.Execute(&buf, data); err != nil {
		h.log.Error("render place page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// formRequest reads the page's form: "stat", question ids with yes or no, "symptom"
// (repeated), "current_tier" and "current_level". Other fields are ignored (a form may
// carry more than rung's); a bad value in one of ours is a problem.
func (e *Engine) formRequest(form map[string][]string) (Request, []Problem) {
	req := Request{Answers: map[string]string{}, Stat: strings.TrimSpace(last(form["stat"]))}
	var probs []Problem
	if n := len([]rune(req.Stat)); n > maxStat {
		probs = append(probs, Problem{Field: "stat", Problem: ProblemInvalid, Value: fmt.Sprintf("%d characters, at most %d", n, maxStat)})
	}
	for _, q := range e.questions {
		vs := form[q.ID]
		if len(vs) == 0 {
			continue
		}
		v := vs[len(vs)-1]
		if v != Yes && v != No {
			probs = append(probs, Problem{Question: q.ID, Problem: ProblemNotYesNo, Value: v})
			continue
		}
		req.Answers[q.ID] = v
	}
	for _, s := range form["symptom"] {
		if _, ok := e.symByID[s]; !ok {
			probs = append(probs, Problem{Symptom: s, Problem: ProblemUnknown})
			continue
		}
		req.Symptoms = append(req.Symptoms, s)
	}
	if ts := last(form["current_tier"]); ts != "" {
		t, err := strconv.Atoi(ts)
		if err != nil || t < 1 || t > 5 {
			probs = append(probs, Problem{Field: "current_tier", Problem: ProblemInvalid, Value: ts})
		} else {
			req.Current = &Current{Tier: t}
			if ls := Level(last(form["current_level"])); ls != "" {
				if !ls.Valid() {
					probs = append(probs, Problem{Field: "current_level", Problem: ProblemInvalid, Value: string(ls)})
				} else {
					req.Current.Level = ls
				}
			}
		}
	}
	return req, probs
}

func last(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func (e *Engine) fillAnswered(d *pageData, prog Progress) {
	var before []field
	if d.Stat != "" {
		before = append(before, field{"stat", d.Stat})
	}
	for _, st := range prog.States {
		if st.State != StateAnswered {
			continue
		}
		d.Answered = append(d.Answered, answeredView{
			Question: e.questions[e.qindex[st.ID]],
			Answer:   st.Answer,
			Before:   append([]field(nil), before...),
		})
		before = append(before, field{st.ID, st.Answer})
	}
	d.Hidden = before
}

func (e *Engine) fillResult(d *pageData, res *Result, req Request) {
	d.Result = res
	for n := 5; n >= 1; n-- {
		d.Tiers = append(d.Tiers, rungView{Card: e.TierCard(n), Here: n == res.Tier})
	}
	d.Columns = Levels()
	for _, l := range d.Columns {
		d.Levels = append(d.Levels, rungView{Card: e.byID[string(l)], Here: l == res.Level})
	}
	for _, r := range Rows() {
		rv := matrixRowView{Row: r, Here: r == res.Cell.Row}
		for _, l := range d.Columns {
			c, _ := e.matrix.Cell(r, l)
			here := rv.Here && (l == res.Level || res.Level == LevelNone)
			rv.Cells = append(rv.Cells, cellView{Cell: c, Here: here})
		}
		d.MatrixRows = append(d.MatrixRows, rv)
	}
	d.Footnotes = e.matrix.Footnotes()
	ticked := map[string]bool{}
	for _, s := range req.Symptoms {
		ticked[s] = true
	}
	for _, c := range e.cards {
		g := symptomGroup{Card: c}
		for _, s := range c.Avoidance {
			g.Symptoms = append(g.Symptoms, symptomView{Symptom: s, Checked: ticked[s.ID]})
		}
		d.SymptomGroups = append(d.SymptomGroups, g)
	}
	if req.Current != nil {
		d.CurrentTier, d.CurrentLevel = req.Current.Tier, req.Current.Level
	}
	d.TierNumbers = []int{1, 2, 3, 4, 5}
	d.AllLevels = append([]Level{LevelNone}, Levels()...)
}
