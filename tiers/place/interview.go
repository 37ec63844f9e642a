package place

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Interview asks the questionnaire on out, one question at a time, reading one answer
// per line from in: yes/y or no/n (any case); "?" explains the question, "back" takes
// back the previous answer, "quit" stops. Once every applicable question is answered it
// offers two optional steps — the symptoms the user recognises and where the stat lives
// today — which an empty line (or the end of the input) skips. It returns the request to
// pass to Place; it fails with ErrIncomplete if the input ends, or the user quits,
// before the last question.
func (e *Engine) Interview(in io.Reader, out io.Writer) (Request, error) {
	sc := bufio.NewScanner(in)
	p := &printer{w: out}
	req := Request{Answers: map[string]string{}}
	var order []string // answered ids, for "back"

	p.say("rung place — answer yes or no. ? explains a question, back changes the last answer, quit stops.\n")
	for {
		prog := e.Progress(req.Answers)
		if prog.Complete {
			break
		}
		q := e.questions[e.qindex[prog.Next]]
		p.say("\n[%d] %s\n", len(order)+1, q.Text)
		for {
			p.say("    yes/no > ")
			if !sc.Scan() {
				p.say("\n")
				if err := sc.Err(); err != nil {
					return req, fmt.Errorf("read answer to %s: %w", q.ID, err)
				}
				return req, fmt.Errorf("%w (next question: %s)", ErrIncomplete, q.ID)
			}
			ans := strings.ToLower(strings.TrimSpace(sc.Text()))
			switch ans {
			case "y", "yes":
				req.Answers[q.ID] = Yes
			case "n", "no":
				req.Answers[q.ID] = No
			case "?", "help", "h":
				p.say("    %s\n", wrap(q.Help, 84, "    "))
				continue
			case "b", "back":
				if len(order) == 0 {
					p.say("    This is the first question.\n")
					continue
				}
				delete(req.Answers, order[len(order)-1])
				order = order[:len(order)-1]
			case "q", "quit", "exit":
				return req, fmt.Errorf("%w (stopped at %s)", ErrIncomplete, q.ID)
			default:
				p.say("    Please answer yes or no (? explains the question).\n")
				continue
			}
			if ans != "b" && ans != "back" {
				order = append(order, q.ID)
			}
			break
		}
		if p.err != nil {
			return req, fmt.Errorf("write question: %w", p.err)
		}
	}

	p.say("\nOptional: do you recognise any of these in your system? Type their numbers\n(e.g. 2 5), or press Enter to skip.\n")
	for i, s := range e.symptoms {
		p.say("  %2d. %s\n", i+1, s.Text)
	}
	for {
		p.say("    symptoms > ")
		if !sc.Scan() {
			p.say("\n")
			return req, sc.Err()
		}
		picked, bad := parsePicks(sc.Text(), len(e.symptoms))
		if bad != "" {
			p.say("    %q is not one of the numbers 1–%d.\n", bad, len(e.symptoms))
			continue
		}
		for _, n := range picked {
			req.Symptoms = append(req.Symptoms, e.symptoms[n-1].ID)
		}
		break
	}

	p.say("\nOptional: where does the stat live today? A tier 1–5, and from Tier 4 up a level\n(in_process, outbox, broker, telemetry_sink), e.g. \"4 outbox\". Enter skips.\n")
	for {
		p.say("    today > ")
		if !sc.Scan() {
			p.say("\n")
			return req, sc.Err()
		}
		cur, msg := parseCurrent(sc.Text())
		if msg != "" {
			p.say("    %s\n", msg)
			continue
		}
		req.Current = cur
		break
	}
	if p.err != nil {
		return req, fmt.Errorf("write interview: %w", p.err)
	}
	return req, nil
}

func parsePicks(line string, n int) (picked []int, bad string) {
	seen := map[int]bool{}
	for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 || v > n {
			return nil, f
		}
		if !seen[v] {
			seen[v] = true
			picked = append(picked, v)
		}
	}
	return picked, ""
}

func parseCurrent(line string) (*Current, string) {
	fs := strings.Fields(strings.ToLower(line))
	if len(fs) == 0 {
		return nil, ""
	}
	t, err := strconv.Atoi(strings.TrimPrefix(fs[0], "tier"))
	if err != nil || t < 1 || t > 5 || len(fs) > 2 {
		return nil, "Give a tier from 1 to 5, optionally followed by a level."
	}
	c := &Current{Tier: t}
	if len(fs) == 2 {
		l := Level(fs[1])
		if !l.Valid() {
			return nil, fmt.Sprintf("%q is not a level: in_process, outbox, broker or telemetry_sink.", fs[1])
		}
		c.Level = l
	}
	return c, ""
}

// printer remembers the first write error so the interview checks once per step.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) say(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// wrap breaks s into lines of at most width runes, continuing lines with indent.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	col := 0
	for i, word := range strings.Fields(s) {
		n := len([]rune(word))
		if i > 0 {
			if col+1+n > width {
				b.WriteString("\n" + indent)
				col = 0
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(word)
		col += n
	}
	return b.String()
}
