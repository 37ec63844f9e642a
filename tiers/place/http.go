package place

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strings"
)

// maxBody bounds a request body: the biggest honest request (every question, every
// symptom, a current build) is well under 2 KiB.
const maxBody = 64 << 10

// The paths Handler serves; package collector mounts exactly these.
const (
	PathQuestions = "/v1/place/questions"
	PathPlace     = "/v1/place"
	PathPage      = "/place"
)

// Paths lists every path Handler serves.
func Paths() []string { return []string{PathQuestions, PathPlace, PathPage} }

// Handler serves the placement API and page:
//
//	GET  /v1/place/questions  the questions; with answers as query parameters
//	                          (?needs_history=yes, or true), each one's state and the
//	                          next one
//	POST /v1/place            a JSON Request → 200 Result, or 400 naming every problem
//	GET, POST /place          the questionnaire page, one question at a time, then the
//	                          result; plain HTML forms that post back to /place
//
// Errors are logged once, here, with log (nil discards them).
func (e *Engine) Handler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{e: e, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc(PathQuestions, h.questions)
	mux.HandleFunc(PathPlace, h.place)
	mux.HandleFunc(PathPage, h.page)
	return mux
}

type handler struct {
	e   *Engine
	log *slog.Logger
}

// ErrorResponse is the body of every 4xx answer of the JSON API. Problems and Next are
// set when the request was read but its answers were wrong.
type ErrorResponse struct {
	Error    string    `json:"error"`
	Problems []Problem `json:"problems,omitempty"`
	Next     string    `json:"next,omitempty"`
}

// ErrorFor is the body the API answers err with.
func ErrorFor(err error) ErrorResponse {
	var ae *AnswersError
	if errors.As(err, &ae) {
		return ErrorResponse{Error: ae.Error(), Problems: ae.Problems, Next: ae.Next}
	}
	return ErrorResponse{Error: err.Error()}
}

// EncodeJSON writes v as the API does: indented, with <, > and & left as they are.
func EncodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := EncodeJSON(&buf, v); err != nil {
		panic(fmt.Sprintf("BUG: encode %T: %v", v, err))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "method not allowed; use " + allow})
}

// QuestionsResponse is the body of GET /v1/place/questions.
type QuestionsResponse struct {
	Questions []QuestionStatus `json:"questions"`
	Next      string           `json:"next,omitempty"`
	Complete  bool             `json:"complete"`
}

// QuestionStatus is a question with its state given the answers in the query.
type QuestionStatus struct {
	Question
	State  string `json:"state"`
	Answer string `json:"answer,omitempty"`
}

func (h *handler) questions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET")
		return
	}
	answers := map[string]string{}
	var probs []Problem
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := q[k][len(q[k])-1]
		switch v { // as POST /v1/place reads JSON's true and false
		case "true":
			v = Yes
		case "false":
			v = No
		}
		if _, ok := h.e.qindex[k]; !ok {
			probs = append(probs, Problem{Question: k, Problem: ProblemUnknown})
			continue
		}
		if v != Yes && v != No {
			probs = append(probs, Problem{Question: k, Problem: ProblemNotYesNo, Value: v})
			continue
		}
		answers[k] = v
	}
	if len(probs) > 0 {
		err := &AnswersError{Problems: probs}
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: err.Error(), Problems: probs})
		return
	}
	prog := h.e.Progress(answers)
	resp := QuestionsResponse{Next: prog.Next, Complete: prog.Complete}
	for i, st := range prog.States {
		resp.Questions = append(resp.Questions, QuestionStatus{Question: h.e.questions[i], State: st.State, Answer: st.Answer})
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) place(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, ErrorResponse{Error: fmt.Sprintf("content type %q: send application/json", ct)})
			return
		}
	}
	req, err := DecodeRequest(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, ErrorResponse{Error: fmt.Sprintf("request body over %d bytes", maxBody)})
			return
		}
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return
	}
	res, err := h.e.Place(req)
	if err != nil {
		if errors.Is(err, ErrAnswers) {
			writeJSON(w, http.StatusBadRequest, ErrorFor(err))
			return
		}
		h.log.Error("place", "err", err)
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: "internal error"})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// wireRequest is Request as it arrives: answers stay raw so that a true or false is
// read as yes or no, and any other non-string answer (1, null) is reported as that
// question's problem rather than failing the whole body.
type wireRequest struct {
	Stat     string                     `json:"stat"`
	Answers  map[string]json.RawMessage `json:"answers"`
	Symptoms []string                   `json:"symptoms"`
	Current  *Current                   `json:"current"`
}

// ErrEmptyBody is DecodeRequest's answer to a body with nothing in it.
var ErrEmptyBody = errors.New(`empty request body: send a JSON object such as {"answers": {"needs_history": "yes"}}`)

// maxStat bounds the stat's name: it is echoed, never interpreted.
const maxStat = 200

// DecodeRequest reads the body of POST /v1/place, one JSON object:
//
//	{
//	  "stat":     "landing-page CVR",              optional, at most 200 characters; echoed
//	  "answers":  {"needs_history": "yes",         question id → "yes" | "no" | true | false
//	               "fixed_cadence_ok": false, ...},
//	  "symptoms": ["dual_writes"],                  optional symptom ids
//	  "current":  {"tier": 4, "level": "outbox"}    optional: where the stat is built today
//	}
//
// true and false are read as "yes" and "no". Unknown fields and trailing data are
// errors, and so is an empty body (ErrEmptyBody). Any other non-string answer is kept as
// its JSON text, so that Place reports it as "not yes or no" under its question's id.
func DecodeRequest(r io.Reader) (Request, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var wr wireRequest
	if err := dec.Decode(&wr); err != nil {
		if errors.Is(err, io.EOF) {
			return Request{}, ErrEmptyBody
		}
		return Request{}, fmt.Errorf("decode request: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, errors.New("decode request: data after the JSON object")
	}
	if n := len([]rune(wr.Stat)); n > maxStat {
		return Request{}, fmt.Errorf("decode request: stat is %d characters, at most %d", n, maxStat)
	}
	req := Request{Stat: strings.TrimSpace(wr.Stat), Answers: make(map[string]string, len(wr.Answers)), Symptoms: wr.Symptoms, Current: wr.Current}
	for k, raw := range wr.Answers {
		var s string
		var b bool
		switch {
		case json.Unmarshal(raw, &s) == nil:
			req.Answers[k] = s
		case json.Unmarshal(raw, &b) == nil && string(bytes.TrimSpace(raw)) != "null":
			req.Answers[k] = map[bool]string{true: Yes, false: No}[b]
		default:
			req.Answers[k] = strings.TrimSpace(string(raw))
		}
	}
	return req, nil
}
