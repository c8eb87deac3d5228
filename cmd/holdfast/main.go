// Command holdfast is the holdfast daemon and its command-line client.
//
// `holdfast daemon` runs a node; every other command talks to a local daemon
// through its control socket (package api). The contract for names, flags,
// output and exit codes is CLI.md: 0 success, 1 an error, 2 a usage
// error, errors on stderr as one line starting "holdfast: ".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/holdfast/holdfast/api"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const (
	defaultDataDir = "/var/lib/holdfast"
	socketName     = "holdfast.sock"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs holdfast with args (without the program name) and returns the
// exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return c.run(context.Background(), args)
}

// cli is one invocation: its streams, its environment and the global flags.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	// The global flags, empty when not given.
	socketFlag  string
	dataDirFlag string
}

// dataDir is --data-dir, else $HOLDFAST_DATA_DIR, else /var/lib/holdfast.
func (c *cli) dataDir() string {
	if c.dataDirFlag != "" {
		return c.dataDirFlag
	}
	if d := c.getenv("HOLDFAST_DATA_DIR"); d != "" {
		return d
	}
	return defaultDataDir
}

// socket is --socket; else, when --data-dir is given, the socket in it;
// else $HOLDFAST_SOCKET; else the socket in the data dir. An explicit
// --data-dir beats the environment, so `holdfast daemon --data-dir D` in a
// shell that exported HOLDFAST_SOCKET for another node still uses D's socket.
func (c *cli) socket() string {
	switch {
	case c.socketFlag != "":
		return c.socketFlag
	case c.dataDirFlag != "":
		return filepath.Join(c.dataDirFlag, socketName)
	case c.getenv("HOLDFAST_SOCKET") != "":
		return c.getenv("HOLDFAST_SOCKET")
	}
	return filepath.Join(c.dataDir(), socketName)
}

func (c *cli) client() *api.Client { return api.NewUnixClient(c.socket()) }

// action runs a command with its positional arguments.
type action func(ctx context.Context, args []string) error

// command is one entry of the command table. setup defines the command's
// flags on fs and returns the action that reads them.
type command struct {
	name     string // "status", "node ls"
	synopsis string // what follows the name in the usage line
	summary  string
	group    string
	setup    func(c *cli, fs *flag.FlagSet) action
}

// Command groups, in the order the help lists them.
var groups = []string{"Daemon", "Cluster", "Nodes", "Secrets", "Data-plane keys", "Backups"}

func commands() []command {
	return []command{
		{"daemon", "[--listen-addr HOST:PORT] [--advertise-addr HOST:PORT] [--metrics-addr HOST:PORT] [--unlock-key-command CMD] [--log-level LEVEL] [--log-format text|json] ...", "Run a holdfast node", "Daemon", setupDaemon},
		{"dev", "[--managers N] [--autolock] [--dir DIR] [--metrics-addr HOST:PORT]", "Run a cluster of N managers in this process, for trying things out", "Daemon", setupDev},
		{"bench", "[--format json] [--dir DIR] [--trials N] [--quick] [--workers N | --secrets N]", "Start a 3-manager cluster of daemons on 127.0.0.1 and measure its performance against the goals", "Daemon", setupBench},
		{"init", "[--autolock] [--cert-expiry DUR] [--key-rotation DUR] [--ca-cert FILE --ca-key FILE] [--force-new-cluster] [-q]", "Create a cluster with this node as its first manager", "Cluster", setupInit},
		{"join", "--token TOKEN HOST:PORT", "Join the cluster of the manager at HOST:PORT", "Cluster", setupJoin},
		{"leave", "[--force]", "Leave the cluster", "Cluster", setupLeave},
		{"status", "[--format FORMAT]", "Show this node and the cluster", "Cluster", setupStatus},
		{"update", "[--autolock=true|false] [--cert-expiry DUR] [--key-rotation DUR]", "Change cluster settings", "Cluster", setupUpdate},
		{"unlock", "[--key-file FILE]", "Unlock this manager with the unlock key, or one share of it (stdin or FILE)", "Cluster", setupUnlock},
		{"unlock-key", "[--rotate [--shares N --threshold M]] [-q] [--format FORMAT]", "Show or rotate the unlock key; --shares splits a new key m-of-n", "Cluster", setupUnlockKey},
		{"join-token", "[--rotate] [-q] [--format FORMAT] worker|manager", "Show or rotate a join token", "Cluster", setupJoinToken},
		{"ca", "[--rotate [--ca-cert FILE --ca-key FILE] [--detach] | --follow] [-q] [--format FORMAT]", "Show the root CA certificate, rotate the root CA and follow the rotation, or (--follow) only follow the rotation in progress", "Cluster", setupCA},
		{"version", "[--format FORMAT]", "Show the version, commit and Go version", "Cluster", setupVersion},
		{"node ls", "[-q] [--format FORMAT] [--filter KEY=VALUE]...", "List the nodes", "Nodes", setupNodeLs},
		{"node inspect", "[--format FORMAT] ID|self", "Show one node", "Nodes", setupNodeInspect},
		{"node promote", "ID", "Make a worker a manager", "Nodes", setupNodePromote},
		{"node demote", "ID", "Make a manager a worker", "Nodes", setupNodeDemote},
		{"node rm", "[--force] ID", "Remove a node from the cluster", "Nodes", setupNodeRm},
		{"secret create", "NAME FILE|- [--label KEY=VALUE]... [--grant NODE_ID]... [-q]", "Store a secret read from FILE, or stdin for -; print its ID", "Secrets", setupSecretCreate},
		{"secret ls", "[-q] [--format FORMAT] [--filter KEY=VALUE]...", "List the secrets, without their data", "Secrets", setupSecretLs},
		{"secret inspect", "[--format FORMAT] NAME|ID", "Show one secret's metadata, never its data", "Secrets", setupSecretInspect},
		{"secret rm", "NAME|ID...", "Remove secrets; granted nodes delete their copies", "Secrets", setupSecretRm},
		{"secret update", "NAME|ID [--label KEY=VALUE]...", "Replace a secret's labels with the given set (none: no labels)", "Secrets", setupSecretUpdate},
		{"secret grant", "NAME|ID NODE_ID|self", "Grant a secret to a node, which then writes it to its secrets dir", "Secrets", setupSecretGrant},
		{"secret revoke", "NAME|ID NODE_ID|self", "Revoke a node's grant; the node deletes its copy", "Secrets", setupSecretRevoke},
		{"keys ls", "[-q] [--format FORMAT]", "List the data-plane keys this node holds (gossip, ipsec), never their material", "Data-plane keys", setupKeysLs},
		{"snapshot save", "FILE [--passphrase-file FILE]", "Save a sealed backup of the cluster's state to FILE (mode 0600)", "Backups", setupSnapshotSave},
		{"snapshot restore", "FILE --data-dir DIR [--key-file FILE | --passphrase-file FILE]", "Build a new data dir from a backup, offline; the node then starts as a one-manager cluster", "Backups", setupSnapshotRestore},
		{"rafttool dump", "[--key-file FILE] [--reveal]", "Print a stopped manager's raft log and snapshots as JSON lines, secrets redacted", "Backups", setupRafttoolDump},
		{"rafttool decrypt", "--out DIR [--key-file FILE]", "Write plaintext copies of a stopped manager's raft log and snapshots into DIR", "Backups", setupRafttoolDecrypt},
	}
}

// errNoCommand means holdfast was run without a command.
var errNoCommand = errors.New("no command")

func (c *cli) run(ctx context.Context, args []string) int {
	return c.report(c.dispatch(ctx, args))
}

// dispatch takes the global flags out of args, wherever they are, and
// runs the rest through the command tree.
func (c *cli) dispatch(ctx context.Context, args []string) error {
	globals := flag.NewFlagSet("holdfast", flag.ContinueOnError)
	globals.SetOutput(io.Discard)
	globals.StringVar(&c.socketFlag, "socket", "", "")
	globals.StringVar(&c.dataDirFlag, "data-dir", "", "")
	rest, err := parseFlags(globals, args, true)
	if err != nil {
		return err
	}
	if isSet(globals, "socket") && c.socketFlag == "" {
		return usagef("--socket needs a path")
	}
	if isSet(globals, "data-dir") && c.dataDirFlag == "" {
		return usagef("--data-dir needs a directory")
	}
	if len(rest) == 0 {
		return errNoCommand
	}
	switch {
	case rest[0] == "-help":
		rest[0] = "--help"
	case rest[0] == "--":
		return usagef("missing command before '--'")
	case strings.HasPrefix(rest[0], "-") && !isHelpArg(rest[0]) && rest[0] != "--version":
		return usagef("unknown flag %s before the command: the global flags are --socket and --data-dir; a command's flags go after its name", rest[0])
	}
	socket, dataDir := c.socketFlag, c.dataDirFlag
	t := c.newTree(ctx)
	// The tree binds the global flags for help; what dispatch parsed holds.
	c.socketFlag, c.dataDirFlag = socket, dataDir
	return t.execute(ctx, rest)
}

func isHelpArg(s string) bool {
	return s == "-h" || s == "-help" || s == "--help"
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: holdfast [--socket PATH] [--data-dir DIR] COMMAND [ARGS]

holdfast runs a raft-replicated cluster of manager nodes. 'holdfast daemon'
runs a node; the other commands talk to the local daemon.
`)
	cmds := commands()
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g)
		tw := newTable(w)
		for _, cm := range cmds {
			if cm.group == g {
				fmt.Fprintf(tw, "  %s\t%s\n", cm.name, cm.summary)
			}
		}
		tw.Flush()
	}
	fmt.Fprint(w, `
Global flags (before or after the command):
  --socket PATH    the daemon's control socket (env HOLDFAST_SOCKET;
                   default <data-dir>/holdfast.sock)
  --data-dir DIR   the node's data directory (env HOLDFAST_DATA_DIR;
                   default /var/lib/holdfast)

Other commands:
  help [COMMAND]                       Show help for a command or a group of commands
  completion bash|zsh|fish|powershell  Print a shell completion script

Run 'holdfast COMMAND --help' or 'holdfast help COMMAND' for a command's flags;
'holdfast --version' prints what 'holdfast version' does.
`)
}

func printCommandUsage(w io.Writer, cmd command, fs *flag.FlagSet, aliases []string) {
	fmt.Fprintf(w, "Usage: holdfast %s %s\n\n%s.\n", cmd.name, cmd.synopsis, cmd.summary)
	if len(aliases) > 0 {
		group, _, _ := strings.Cut(cmd.name, " ")
		var also []string
		for _, a := range aliases {
			also = append(also, "'holdfast "+group+" "+a+"'")
		}
		fmt.Fprintf(w, "Also: %s.\n", strings.Join(also, ", "))
	}
	var lines [][2]string
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if _, ok := f.Value.(*choiceFlag); ok && arg == "value" {
			arg = "VALUE"
		}
		name := dashed(f.Name)
		if !isBoolFlag(f) {
			name += " " + arg
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += " (default " + f.DefValue + ")"
		}
		lines = append(lines, [2]string{name, usage})
	})
	if len(lines) > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		tw := newTable(w)
		for _, l := range lines {
			fmt.Fprintf(tw, "  %s\t%s\n", l[0], l[1])
		}
		tw.Flush()
	}
	fmt.Fprint(w, "\nGlobal flags: --socket PATH, --data-dir DIR (see 'holdfast help').\n")
}

// report prints err, if any, as one line on stderr and returns the exit
// status for it.
func (c *cli) report(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errReported):
		return exitError
	case errors.Is(err, errNoCommand):
		printUsage(c.stderr)
		return exitUsage
	case errors.As(err, &ue):
		hint := ue.hint
		if hint == "" {
			hint = "holdfast help"
		}
		c.errorLine(fmt.Sprintf("%s; run '%s' for usage", ue.msg, hint))
		return exitUsage
	case errors.Is(err, api.ErrUnreachable):
		c.errorLine(unreachableMessage(c.socket(), err))
		return exitError
	default:
		c.errorLine(err.Error())
		return exitError
	}
}

// errorLine writes msg to stderr as one line starting "holdfast: ".
func (c *cli) errorLine(msg string) {
	fmt.Fprintln(c.stderr, "holdfast: "+oneLine(msg))
}

// oneLine flattens msg onto a single line.
func oneLine(msg string) string {
	msg = strings.TrimPrefix(strings.TrimSpace(msg), "holdfast: ")
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	lines := strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// unreachableMessage explains a failure to reach the daemon at socket.
func unreachableMessage(socket string, err error) string {
	cause := strings.TrimPrefix(err.Error(), api.ErrUnreachable.Error())
	cause = strings.TrimPrefix(cause, ": ")
	if i := strings.LastIndex(cause, ": "); i >= 0 {
		cause = cause[i+2:] // "dial unix /x: connect: no such file" → "no such file"
	}
	if cause != "" {
		cause = " (" + cause + ")"
	}
	return fmt.Sprintf("cannot reach the holdfast daemon at %s%s: is it running? Start it with 'holdfast daemon', or point --socket or HOLDFAST_SOCKET at its socket", socket, cause)
}
