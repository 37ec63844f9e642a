package place

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes a result for a terminal: the rung and its verdict, the warnings, why
// it landed there, the cards with how to build them, the triggers to watch for, and the
// readings of symptoms and of the current build.
func WriteText(w io.Writer, r Result) error {
	p := &printer{w: w}
	const width = 88
	para := func(indent, s string) {
		hang := strings.Repeat(" ", len([]rune(indent)))
		p.say("%s%s\n", indent, wrap(s, width-len(hang), hang))
	}
	rule := func(title string) { p.say("\n%s\n%s\n", title, strings.Repeat("─", len([]rune(title)))) }

	if r.Stat != "" {
		p.say("Stat: %s\n", r.Stat)
	}
	p.say("Your rung: %s\n", r.Rung)
	para("", fmt.Sprintf("Verdict: %s. %s", verdictText(&r), r.Reason))

	if len(r.Warnings) > 0 {
		rule("Warnings")
		for _, wn := range r.Warnings {
			para("  ", fmt.Sprintf("! %s: %s", wn.Kind, wn.Message))
		}
	}
	if c := r.Current; c != nil {
		rule("Where it lives today")
		para("  ", c.Summary)
	}
	rule("Why here")
	for _, a := range r.Path {
		para("  ", fmt.Sprintf("%s %s — %s", a.Text, a.Answer, a.Because))
	}
	for _, ig := range r.Ignored {
		para("  ", fmt.Sprintf("(%s = %s: %s)", ig.Question, ig.Answer, ig.Why))
	}
	for _, c := range []*Card{r.Card, r.LevelCard} {
		if c != nil {
			writeCard(p, c, para, rule)
		}
	}
	rule("Watch for")
	for _, t := range r.Triggers {
		s := t.When + " " + t.Then
		if t.Climb != "" {
			s += " → " + climbLabel(t.Climb)
		}
		para("  - ", s)
	}
	if len(r.Symptoms) > 0 {
		rule("What your symptoms signal")
		for _, s := range r.Symptoms {
			para("  - ", fmt.Sprintf("%s. %s %s", s.Text, s.Signals, s.Placement))
		}
	}
	return p.err
}

func writeCard(p *printer, c *Card, para func(string, string), rule func(string)) {
	rule(c.Title() + " — " + c.Summary)
	para("  ", "Complexity: "+c.Complexity)
	para("  ", "Setup: "+c.Setup)
	para("  ", "Maintenance: "+c.Maintenance)
	p.say("\n")
	para("  ", "What it captures: "+c.Captures)
	para("  ", "Why it works: "+c.Why)
	p.say("  Pains and hard limits:\n")
	for _, s := range c.Pains {
		para("    - ", s)
	}
	p.say("  What people do to avoid it:\n")
	for _, s := range c.Avoidance {
		para("    - ", s.Text)
	}
	para("    → ", c.AvoidanceResult)
	p.say("  How to build it with rung:\n")
	for i, s := range c.Build {
		line := fmt.Sprintf("%d. %s", i+1, s.Title)
		if s.Note != "" {
			line += " — " + s.Note
		}
		para("    ", line)
		if s.Code != "" {
			for _, l := range strings.Split(s.Code, "\n") {
				p.say("        %s\n", strings.ReplaceAll(l, "\t", "    "))
			}
		}
	}
}

// climbLabel names the rung a trigger climbs to: "Tier 3", "L3 · outbox".
func climbLabel(id string) string {
	if n, ok := strings.CutPrefix(id, "tier"); ok {
		return "Tier " + n
	}
	return LevelLabel(Level(id))
}
