package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// How rung speaks to a person: errors as plain lines on stderr, help on stdout, and an
// exit code that says whose mistake it was: 2 the command line's, 1 the run's.

// usageError is a mistake in the command line (a bad flag, a bad value, a missing or
// unknown argument): exit 2, with a pointer to the command's --help.
type usageError struct {
	cmd  string // "rung serve": whose --help to point to
	err  error
	help string // shown instead of the error and the pointer (rung alone shows its help)
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// badUsage marks err as a mistake in how the command of fs was called.
func badUsage(fs *flag.FlagSet, err error) error {
	return &usageError{cmd: fs.Name(), err: err}
}

// helpRequest is -h or --help: the help text goes to stdout and rung exits 0.
type helpRequest struct{ text string }

func (h *helpRequest) Error() string { return "help requested" }
func (h *helpRequest) Unwrap() error { return flag.ErrHelp }

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// cmdError is a failure of a command at run time, named by the command it came from.
type cmdError struct {
	cmd string
	err error
}

func (e *cmdError) Error() string { return e.err.Error() }
func (e *cmdError) Unwrap() error { return e.err }

// exitCode writes err for a person to stderr (and the help a help request carries to
// stdout) and returns the code rung exits with: 0 done or help shown, 2 a usage error,
// 1 a failure at run time. main exits with it; the tests check it.
func exitCode(err error, stdout, stderr io.Writer) int {
	var help *helpRequest
	if errors.As(err, &help) {
		io.WriteString(stdout, help.text)
		return 0
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	cmd, code := "rung", 1
	var ce *cmdError
	if errors.As(err, &ce) {
		cmd = ce.cmd
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.help != "" {
			io.WriteString(stderr, ue.help)
			return 2
		}
		cmd, code = ue.cmd, 2
	}
	// A configuration with several problems lists one per line.
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			fmt.Fprintf(stderr, "%s: %s\n", cmd, line)
		}
	}
	if code == 2 {
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", cmd)
	}
	return code
}

// newFlags makes the flag set of a command ("serve", "query experiment"). It prints
// nothing itself: parseFlags turns its errors into one line and its help into text.
func newFlags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet("rung "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args into fs, then fills every flag not given on the command line
// from its RUNG_* variable (--max-body-bytes from RUNG_MAX_BODY_BYTES). A mistake is a
// usageError; -h or --help a helpRequest.
func parseFlags(fs *flag.FlagSet, args []string, env environ) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpRequest{text: usageText(fs)}
		}
		return badUsage(fs, flagProblem(fs, err))
	}
	if fs.NArg() > 0 {
		return badUsage(fs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		key := envNameOf(f)
		if v, ok := env(key); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %s", key, v, valueProblem(f, err)))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return badUsage(fs, err)
	}
	return nil
}

// envNameOf is the variable a flag is read from when the command line does not give
// it: the one its usage names ("(environment: RUNG_RELAY_BATCH)"), else
// envName(its name). The help shows the same text, so the two cannot disagree.
func envNameOf(f *flag.Flag) string {
	if _, rest, ok := strings.Cut(f.Usage, "(environment: "); ok {
		if name, _, ok := strings.Cut(rest, ")"); ok {
			return name
		}
	}
	return envName(f.Name)
}

func envName(flagName string) string {
	return "RUNG_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagProblem rewrites the flag package's parse errors in rung's words: flags with
// their two dashes, and what a bad value should have been.
func flagProblem(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag %s", dashed(name))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("%s needs a value", dashed(name))
	}
	rest, ok := strings.CutPrefix(msg, "invalid value ")
	if !ok {
		rest, ok = strings.CutPrefix(msg, "invalid boolean value ")
	}
	if !ok {
		return err
	}
	quoted, err2 := strconv.QuotedPrefix(rest)
	if err2 != nil {
		return err
	}
	value, _ := strconv.Unquote(quoted)
	rest = strings.TrimPrefix(strings.TrimPrefix(rest[len(quoted):], " for flag -"), " for -")
	name, cause, _ := strings.Cut(rest, ": ")
	f := fs.Lookup(name)
	if f == nil {
		return err
	}
	return fmt.Errorf("%s %q: %s", dashed(name), value, valueProblem(f, errors.New(cause)))
}

// valueProblem says what a flag's value should have been, given why it was refused.
func valueProblem(f *flag.Flag, err error) string {
	if strings.Contains(err.Error(), "out of range") {
		return "out of range"
	}
	switch typeName(f) {
	case "duration":
		return "want a duration such as 500ms, 30s or 1h30m"
	case "int":
		return "want a whole number"
	case "uint":
		return "want a whole number, 0 or more"
	case "float":
		return "want a number"
	case "":
		return "want true or false"
	}
	return err.Error()
}

// typeName is what the help shows after a flag's name: "" for a switch.
func typeName(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "value"
	}
	switch g.Get().(type) {
	case bool:
		return ""
	case time.Duration:
		return "duration"
	case int, int64:
		return "int"
	case uint, uint64:
		return "uint"
	case float64:
		return "float"
	case string:
		return "string"
	}
	return "value"
}

// dashed writes a flag as it is typed: -n, --data-dir.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// usageText is a command's help: the usage line, what it does, its flags.
func usageText(fs *flag.FlagSet) string {
	var b strings.Builder
	args, summary := synopsis(strings.TrimPrefix(fs.Name(), "rung "))
	writeHeader(&b, fs.Name(), args, summary)
	var first string
	fs.VisitAll(func(f *flag.Flag) {
		if first == "" {
			first = f.Name
			b.WriteString("\nflags:\n")
		}
		b.WriteString("  " + dashed(f.Name))
		if t := typeName(f); t != "" {
			b.WriteString(" " + t)
		}
		b.WriteString("\n        " + f.Usage)
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "0s" {
			if typeName(f) == "string" {
				d = strconv.Quote(d)
			}
			b.WriteString(" (default " + d + ")")
		}
		b.WriteString("\n")
	})
	if first != "" {
		fmt.Fprintf(&b, "\nEvery flag can be set in the environment too (%s as %s); the command line wins.\n",
			dashed(first), envNameOf(fs.Lookup(first)))
	}
	return b.String()
}

// writeHeader writes the usage line every command's help starts with.
func writeHeader(w io.Writer, name, args, summary string) {
	if args != "" {
		name += " " + args
	}
	fmt.Fprintf(w, "usage: %s [flags]\n\n%s\n", name, summary)
}

// printResolved prints a command's resolved configuration, as --dry-run shows it: JSON
// in the order of the struct's fields, durations written as durations (30s, not
// 30000000000), fields tagged json:"-" (secrets) left out.
func printResolved(w io.Writer, c any) error {
	var b bytes.Buffer
	b.WriteString("{")
	n := 0
	var walk func(v reflect.Value) error
	walk = func(v reflect.Value) error {
		t := v.Type()
		for i := range t.NumField() {
			sf, fv := t.Field(i), v.Field(i)
			key, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if key == "-" {
				continue
			}
			if sf.Anonymous && key == "" && sf.Type.Kind() == reflect.Struct {
				if err := walk(fv); err != nil {
					return err
				}
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if key == "" {
				key = sf.Name
			}
			val := fv.Interface()
			if d, ok := val.(time.Duration); ok {
				val = d.String()
			}
			j, err := json.MarshalIndent(val, "  ", "  ")
			if err != nil {
				return fmt.Errorf("print %s: %w", key, err)
			}
			if n > 0 {
				b.WriteString(",")
			}
			n++
			fmt.Fprintf(&b, "\n  %q: %s", key, j)
		}
		return nil
	}
	if err := walk(reflect.Indirect(reflect.ValueOf(c))); err != nil {
		return err
	}
	b.WriteString("\n}\n")
	_, err := w.Write(b.Bytes())
	return err
}
