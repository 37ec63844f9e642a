package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rungdev/rung/tiers/place"
)

// runPlace is `rung place`: the placement questionnaire, asked one question at a time
// on the terminal, or read from a file of answers (--answers FILE, "-" for standard
// input) for scripts. --json prints the result as POST /v1/place returns it; without
// it the result is text. The questionnaire itself lives in tiers/place.
func runPlace(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("place")
	answersFile := fs.String("answers", "", `read the answers from this JSON file, as POST /v1/place takes them ("-" for standard input), instead of asking`)
	asJSON := fs.Bool("json", false, "print the result as JSON, as POST /v1/place returns it")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	eng, err := place.New()
	if err != nil {
		return err
	}

	var req place.Request
	if *answersFile != "" {
		req, err = readAnswers(*answersFile)
	} else {
		// With --json, stdout carries only the JSON: the questions go to stderr.
		prompts := stdout
		if *asJSON {
			prompts = os.Stderr
		}
		req, err = interview(ctx, eng, prompts)
	}
	if err != nil {
		return err
	}

	res, err := eng.Place(req)
	if err != nil {
		if *asJSON && errors.Is(err, place.ErrAnswers) {
			if werr := place.EncodeJSON(stdout, place.ErrorFor(err)); werr != nil {
				return werr
			}
		}
		return err
	}
	if *asJSON {
		return place.EncodeJSON(stdout, res)
	}
	return place.WriteText(stdout, res)
}

func readAnswers(name string) (place.Request, error) {
	f := os.Stdin
	if name != "-" {
		var err error
		if f, err = os.Open(name); err != nil {
			return place.Request{}, fmt.Errorf("read answers: %w", err)
		}
		defer f.Close()
	}
	req, err := place.DecodeRequest(f)
	if err != nil {
		return req, fmt.Errorf("read answers from %s: %w", name, err)
	}
	return req, nil
}

// interview runs the questionnaire on standard input. A read from a terminal cannot be
// interrupted, so the interview runs in its own goroutine and an interrupt (ctx done)
// returns at once; that goroutine then ends with the process.
func interview(ctx context.Context, eng *place.Engine, prompts io.Writer) (place.Request, error) {
	type answer struct {
		req place.Request
		err error
	}
	done := make(chan answer, 1)
	go func() {
		req, err := eng.Interview(os.Stdin, prompts)
		done <- answer{req, err}
	}()
	select {
	case a := <-done:
		return a.req, a.err
	case <-ctx.Done():
		return place.Request{}, fmt.Errorf("questionnaire interrupted: %w", ctx.Err())
	}
}
