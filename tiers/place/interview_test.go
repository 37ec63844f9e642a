package place

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestInterview(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name  string
		input string
		want  want
		says  []string // in the transcript
		err   error
		syms  int
		cur   *Current
	}{
		{
			name:  "how many contacts",
			input: "no\nn\n\n\n",
			want:  want{1, LevelNone, NoEvents, nil},
		},
		{
			name: "retries, help and back",
			// maybe → re-asked; ? → help; yes; back → needs_history again; ...
			input: "maybe\n?\nyes\nback\nYES\n no \n N \nyes\n\nno\nno\nno\n2,14 14\n5 outbox\n",
			want:  want{4, LevelOutbox, Required, []string{WarnTooHigh}},
			says:  []string{"Please answer yes or no", "Yes if anyone will ask", "[2] Is a level sampled"},
			syms:  2,
			cur:   &Current{Tier: 5, Level: LevelOutbox},
		},
		{
			name:  "bad optional input is asked again",
			input: "no\nno\n99\n\n7\ntier1 none\n",
			want:  want{1, LevelNone, NoEvents, nil},
			says:  []string{`"99" is not one of the numbers`, "Give a tier from 1 to 5"},
			cur:   &Current{Tier: 1, Level: LevelNone},
		},
		{
			name:  "input ends early",
			input: "yes\nno\n",
			err:   ErrIncomplete,
			says:  []string{"[3]"},
		},
		{
			name:  "quit",
			input: "yes\nquit\n",
			err:   ErrIncomplete,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			req, err := e.Interview(strings.NewReader(tc.input), &out)
			for _, s := range tc.says {
				if !strings.Contains(out.String(), s) {
					t.Errorf("transcript lacks %q:\n%s", s, out.String())
				}
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("interview: %v\n%s", err, out.String())
			}
			res, err := e.Place(req)
			if err != nil {
				t.Fatalf("place: %v", err)
			}
			if tc.want.tier != 0 && !got(res).equal(tc.want) {
				t.Errorf("got %v, want %v", got(res), tc.want)
			}
			if len(req.Symptoms) != tc.syms {
				t.Errorf("symptoms %v, want %d", req.Symptoms, tc.syms)
			}
			if (req.Current == nil) != (tc.cur == nil) || req.Current != nil && *req.Current != *tc.cur {
				t.Errorf("current %+v, want %+v", req.Current, tc.cur)
			}
		})
	}
}

func TestWriteText(t *testing.T) {
	e := newEngine(t)
	res, err := e.Place(Request{
		Answers:  answers(t, "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=yes cross_service=no anonymous_high_volume=yes loss_ok=no"),
		Symptoms: []string{"dual_writes"},
		Current:  &Current{Tier: 4, Level: LevelTelemetrySink},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteText(&out, res); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	flat := strings.Join(strings.Fields(s), " ")
	for _, want := range []string{
		"Your rung: Tier 4 · Event log + rollups on L3 · Outbox",
		"! wrong_source:", "Why here", "or must it never undercount? yes — It is money-grade",
		"Tier 4 · Event log + rollups —", "L3 · Outbox —", "How to build it with rung:",
		"outbox.Write(", "Watch for", "→ Tier 5", "What your symptoms signal", "Dual writes",
		"Where it lives today",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	for i, line := range strings.Split(s, "\n") {
		if n := len([]rune(line)); n > 130 && !strings.HasPrefix(line, "        ") && !strings.HasPrefix(line, "──") {
			t.Errorf("line %d is %d wide: %q", i+1, n, line)
		}
	}
}
