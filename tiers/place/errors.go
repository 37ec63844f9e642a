package place

import (
	"errors"
	"fmt"
	"strings"
)

// ErrAnswers is what every *AnswersError wraps: the request named a question that does
// not exist, left out one that applies, or answered something other than yes or no.
var ErrAnswers = errors.New("bad answers")

// ErrIncomplete is returned by Interview when the input ends before the last question.
var ErrIncomplete = errors.New("the answers ended before the questionnaire did")

// The problems an answer (or a symptom, or the current build) can have.
const (
	ProblemMissing  = "missing"       // an applicable question has no answer
	ProblemUnknown  = "unknown"       // no such question or symptom id
	ProblemNotYesNo = "not yes or no" // an answer other than "yes" or "no"
	ProblemInvalid  = "invalid"       // a bad value in the optional current build
)

// Problem is one thing wrong with a request. Exactly one of Question, Symptom and Field
// names what it is about.
type Problem struct {
	Question string `json:"question,omitempty"`
	Symptom  string `json:"symptom,omitempty"`
	Field    string `json:"field,omitempty"`
	Problem  string `json:"problem"`
	Value    string `json:"value,omitempty"`
}

func (p Problem) String() string {
	subject := p.Question
	switch {
	case p.Symptom != "":
		subject = "symptom " + p.Symptom
	case p.Field != "":
		subject = p.Field
	}
	switch {
	case p.Problem == ProblemUnknown && p.Question != "":
		return fmt.Sprintf("%s: no such question", subject)
	case p.Problem == ProblemUnknown:
		return fmt.Sprintf("%s: no such symptom", subject)
	case p.Value != "":
		return fmt.Sprintf("%s: %s (got %q)", subject, p.Problem, p.Value)
	}
	return fmt.Sprintf("%s: %s", subject, p.Problem)
}

// AnswersError lists every problem of a request, and the question to ask next when the
// answers so far allow knowing it.
type AnswersError struct {
	Problems []Problem
	Next     string
}

func (e *AnswersError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	noun := "problems"
	if len(parts) == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("%d %s with the answers: %s", len(parts), noun, strings.Join(parts, "; "))
}

func (e *AnswersError) Unwrap() error { return ErrAnswers }
