// Command rung collects page-view signals at volume, stitches conversions into durable
// business events, answers CVR and lift questions, and places a stat on the ladder of
// metrics architectures. This file dispatches subcommands (each lives in its own file) and
// prints rung's help and version; cli.go is how every command speaks to a person.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand. It parses its own flags from args and writes its
// human output to stdout; errors are returned, and main says them once (see exitCode).
type command struct {
	args    string // what the usage line shows after the command's name, before [flags]
	summary string
	run     func(ctx context.Context, args []string, env environ, stdout io.Writer) error
}

// environ looks up RUNG_* variables; tests pass a map instead of the process environment.
type environ func(key string) (string, bool)

func commands() map[string]command {
	return map[string]command{
		"serve":     {"", "run the collector, the query API, the dashboard and the placement pages", runServe},
		"aggregate": {"", "in a cluster: consume partitions of the JetStream stream into the sessionizer and the sink", runAggregate},
		"baseline":  {"", "run a bare fasthttp server answering 202: the baseline of every /collect ratio", runBaseline},
		"bench":     {"", "drive load at rung's /collect, measure latency honestly, verify what landed and the stats", runBench},
		"tail":      {"", "print the newest stored signals", runTail},
		"migrate":   {"", "create or migrate the sink's and the business database's tables, then exit", runMigrate},
		"place":     {"", "answer the placement questionnaire: which tier and event level your stat needs", runPlace},
		"relay":     {"", "ship committed outbox rows to NATS JetStream (or straight into the events table) and project them", runRelay},
		"query":     {"landing-pages|trend|sources|experiment ID", "landing-page CVR, trend, sources or an experiment's lift, from the rollups", runQuery},
		"reconcile": {"", "recompute the rollups from raw signals, print every mismatch, fail on any", runReconcile},
		"version":   {"", "print rung's version, the commit it was built from and the Go release", runVersion},
	}
}

// synopsis is the usage line's arguments and the summary of cmd ("serve", "query
// experiment").
func synopsis(cmd string) (args, summary string) {
	if c, ok := commands()[cmd]; ok {
		return c.args, c.summary
	}
	if q, ok := strings.CutPrefix(cmd, "query "); ok {
		if c, ok := queries()[q]; ok {
			return c.args, c.summary
		}
	}
	return "", ""
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli runs rung with args and returns its exit code (see exitCode).
func cli(ctx context.Context, args []string, env environ, stdout, stderr io.Writer) int {
	return exitCode(dispatch(ctx, args, env, stdout), stdout, stderr)
}

// dispatch runs the command args[0] names with the rest of args. Help (rung help CMD,
// CMD --help) comes back as a helpRequest for exitCode to print; a failure comes back
// named by its command.
func dispatch(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	cmds := commands()
	if len(args) == 0 {
		return &usageError{cmd: "rung", err: errors.New("no command given"), help: topHelp(cmds)}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		return &helpRequest{text: topHelp(cmds)}
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	case "help":
		if len(args) == 1 || args[1] == "help" || isHelp(args[1]) {
			return &helpRequest{text: topHelp(cmds)}
		}
		args = append(args[1:len(args):len(args)], "--help")
	}
	c, ok := cmds[args[0]]
	if !ok {
		return &usageError{cmd: "rung", err: fmt.Errorf("unknown command %q", args[0])}
	}
	if err := c.run(ctx, args[1:], env, stdout); err != nil {
		return &cmdError{cmd: "rung " + args[0], err: err}
	}
	return nil
}

// topHelp is rung's own help: what it is and its commands.
func topHelp(cmds map[string]command) string {
	var b strings.Builder
	writeHeader(&b, "rung", "COMMAND", "rung collects page-view signals, stitches conversions into durable business events,\n"+
		"answers CVR and lift questions, and places a stat on the ladder of metrics architectures.")
	b.WriteString("\ncommands:\n")
	// Names alone: each command's arguments are on its own usage line.
	all := map[string]command{"help": {summary: "print a command's usage and flags: rung help COMMAND"}}
	for n, c := range cmds {
		all[n] = command{summary: c.summary}
	}
	writeCommands(&b, all)
	b.WriteString("\nrun 'rung help COMMAND' for a command's flags; 'rung --version' is 'rung version'\n")
	return b.String()
}

// writeCommands lists commands by name, each with its arguments and summary.
func writeCommands(w io.Writer, cmds map[string]command) {
	width := 0
	for n, c := range cmds {
		width = max(width, len(strings.TrimSpace(n+" "+c.args)))
	}
	for _, n := range slices.Sorted(maps.Keys(cmds)) {
		fmt.Fprintf(w, "  %-*s  %s\n", width, strings.TrimSpace(n+" "+cmds[n].args), cmds[n].summary)
	}
}

// runVersion prints the version of the binary from its build information.
func runVersion(_ context.Context, args []string, env environ, stdout io.Writer) error {
	if err := parseFlags(newFlags("version"), args, env); err != nil {
		return err
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("this binary carries no build information")
	}
	_, err := io.WriteString(stdout, versionText(info))
	return err
}

// versionText is one line: the module version, the commit (and whether the tree had
// changes), when it was committed, the Go release and platform.
func versionText(info *debug.BuildInfo) string {
	set := map[string]string{}
	for _, s := range info.Settings {
		set[s.Key] = s.Value
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	line := "rung " + v
	if rev := set["vcs.revision"]; rev != "" {
		line += ", commit " + rev
		if set["vcs.modified"] == "true" {
			line += " (modified)"
		}
	}
	if t := set["vcs.time"]; t != "" {
		line += ", committed " + t
	}
	line += ", " + info.GoVersion
	if set["GOOS"] != "" {
		line += " " + set["GOOS"] + "/" + set["GOARCH"]
	}
	return line + "\n"
}
