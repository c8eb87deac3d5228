package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The command tree. cobra routes the words of a command line to a command,
// parses its flags (with pflag: the flags each setup function defines on a
// flag.FlagSet, so that they are defined once), and gives help for every
// command and group, the ls/list and rm/remove aliases, "did you mean"
// suggestions, shell completion and docs/CLI.md. The commands themselves
// are the table of commands() and their actions, unchanged; errors keep
// holdfast's own words (usageError, exit status 2).

func init() {
	// Help lists commands in the table's order, not sorted.
	cobra.EnableCommandSorting = false
}

// groupCommands are the commands that only group others ("node ls").
var groupCommands = []struct{ name, summary string }{
	{"node", "Manage the cluster's nodes"},
	{"secret", "Store secrets, grant them to nodes, list, update and remove them"},
	{"keys", "Show the data-plane keys this node holds"},
	{"snapshot", "Save a sealed backup of the cluster's state, or restore one"},
	{"rafttool", "Read a stopped manager's raft log and snapshots (offline)"},
}

// commandAliases are the other names of a command, by its last word.
var commandAliases = map[string][]string{"ls": {"list"}, "rm": {"remove"}}

// tree is the cobra command tree of one invocation.
type tree struct {
	root   *cobra.Command
	leaves map[*cobra.Command]leaf
	groups map[*cobra.Command]bool
	// defaultHelp is cobra's own help, for the commands cobra adds
	// (completion).
	defaultHelp func(*cobra.Command, []string)
}

// leaf is a command of the table with the flags its setup defined.
type leaf struct {
	cmd command
	fs  *flag.FlagSet
}

// ranError carries an error a command's action returned, to tell it from
// the errors cobra makes (an unknown argument to 'completion'), which are
// usage errors.
type ranError struct{ err error }

func (e *ranError) Error() string { return e.err.Error() }
func (e *ranError) Unwrap() error { return e.err }

// ran wraps what an action of cmd returned; a usage error without a hint
// points at cmd's help.
func ran(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) && ue.hint == "" {
		ue.hint = cmd.CommandPath() + " --help"
	}
	return &ranError{err}
}

// newTree builds the command tree for c; actions run with ctx.
func (c *cli) newTree(ctx context.Context) *tree {
	t := &tree{leaves: map[*cobra.Command]leaf{}, groups: map[*cobra.Command]bool{}}
	root := &cobra.Command{
		Use:           "holdfast",
		Short:         "holdfast runs a raft-replicated cluster of manager nodes",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          unknownCommandArgs,
	}
	t.root = root
	t.defaultHelp = root.HelpFunc()
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetIn(c.stdin)
	root.SetFlagErrorFunc(flagError)
	// The global flags are taken out of the command line before cobra
	// sees it (dispatch), wherever they are; cobra knows them for help
	// and completion.
	root.PersistentFlags().StringVar(&c.socketFlag, "socket", "", "the daemon's control socket (env HOLDFAST_SOCKET; default <data-dir>/holdfast.sock)")
	root.PersistentFlags().StringVar(&c.dataDirFlag, "data-dir", "", "the node's data directory (env HOLDFAST_DATA_DIR; default /var/lib/holdfast)")
	showVersion := root.Flags().Bool("version", false, "print the version, as 'holdfast version' does")

	groups := map[string]*cobra.Command{}
	for _, g := range groupCommands {
		gc := &cobra.Command{
			Use:   g.name + " COMMAND",
			Short: g.summary,
			Args:  unknownCommandArgs,
			RunE:  needsSubcommand,
		}
		root.AddCommand(gc)
		groups[g.name] = gc
		t.groups[gc] = true
	}
	for _, cm := range commands() {
		parent, word := root, cm.name
		if g, sub, ok := strings.Cut(cm.name, " "); ok {
			parent, word = groups[g], sub
		}
		fs := flag.NewFlagSet(cm.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		act := cm.setup(c, fs)
		cc := &cobra.Command{
			Use:                   word + " " + cm.synopsis,
			Short:                 cm.summary,
			Aliases:               commandAliases[word],
			DisableFlagsInUseLine: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return ran(cmd, act(ctx, args))
			},
		}
		fs.VisitAll(func(f *flag.Flag) {
			cc.Flags().AddFlag(pflagFor(fs, f))
			if _, ok := f.Value.(*formatValue); ok {
				_ = cc.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
			}
			if ch, ok := f.Value.(*choiceFlag); ok {
				_ = cc.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(ch.choices, cobra.ShellCompDirectiveNoFileComp))
			}
		})
		parent.AddCommand(cc)
		t.leaves[cc] = leaf{cm, fs}
	}

	root.RunE = func(cmd *cobra.Command, args []string) error {
		if *showVersion {
			// The same action as 'holdfast version'.
			vc, _, err := root.Find([]string{"version"})
			if err != nil || vc == root {
				return ran(cmd, errors.New("no version command"))
			}
			return vc.RunE(vc, nil)
		}
		return ran(cmd, errNoCommand)
	}
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) { t.printHelp(cmd.OutOrStdout(), cmd) })
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Show help for a command or a group of commands",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err == nil && len(rest) > 0 {
				err = unknownCommandArgs(target, rest)
			}
			var ue *usageError
			if errors.As(err, &ue) && ue.hint == "" {
				ue.hint = "holdfast help"
			}
			if err != nil {
				return ran(cmd, err)
			}
			t.printHelp(c.stdout, target)
			return nil
		},
		ValidArgsFunction: func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range target.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
	})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() == "completion" {
			// Without a shell, or with an unknown one: a usage error.
			cmd.Args = unknownCommandArgs
			cmd.RunE = needsSubcommand
		}
	}
	walk(root, func(cmd *cobra.Command) { cmd.SuggestionsMinimumDistance = 2 })
	return t
}

// execute runs the command line args (the global flags taken out) and
// returns what the command returned.
func (t *tree) execute(ctx context.Context, args []string) error {
	if args == nil {
		args = []string{} // cobra reads os.Args for nil
	}
	if cmd, _, err := t.root.Find(args); err == nil {
		args = longFlagsWithOneDash(cmd, args)
	}
	t.root.SetArgs(args)
	err := t.root.ExecuteContext(ctx)
	var re *ranError
	var ue *usageError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return re.err
	case errors.As(err, &ue):
		return err
	}
	// cobra's own checks, such as 'completion' with an unknown shell.
	return usagef("%s", strings.TrimPrefix(err.Error(), "Error: "))
}

// needsSubcommand is the action of a group run alone.
func needsSubcommand(cmd *cobra.Command, _ []string) error {
	return ran(cmd, usagef("'%s' needs a subcommand: %s", cmd.Name(), strings.Join(subcommandNames(cmd), ", ")))
}

// longFlagsWithOneDash rewrites -name to --name for the long flags of
// cmd, which holdfast has always taken with one dash too (-force), while
// pflag reads -force as -f -o -r -c -e.
func longFlagsWithOneDash(cmd *cobra.Command, args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if len(name) > 1 && (cmd.Flags().Lookup(name) != nil || cmd.InheritedFlags().Lookup(name) != nil || name == "help") {
			out[i] = "-" + a
		}
	}
	return out
}

// subcommandNames lists the names of cmd's subcommands, as help lists them.
func subcommandNames(cmd *cobra.Command) []string {
	var names []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return names
}

// unknownCommandArgs is the Args check of the root and the groups: they
// take no arguments, so an argument is an unknown command, with a
// suggestion when one is near.
func unknownCommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var msg string
	prefix := ""
	if cmd.HasParent() {
		prefix = cmd.Name() + " "
		msg = fmt.Sprintf("unknown command '%s%s'; the '%s' commands are %s", prefix, args[0], cmd.Name(), strings.Join(subcommandNames(cmd), ", "))
	} else {
		msg = fmt.Sprintf("unknown command '%s'", args[0])
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean '%s%s'?", prefix, s[0])
	}
	ue := &usageError{msg: msg}
	if cmd.HasParent() {
		ue.hint = cmd.CommandPath() + " --help"
	}
	return ue
}

// flagError puts pflag's errors in holdfast's words.
func flagError(cmd *cobra.Command, err error) error {
	var (
		notExist *pflag.NotExistError
		noValue  *pflag.ValueRequiredError
		invalid  *pflag.InvalidValueError
		ue       *usageError
	)
	switch {
	case errors.As(err, &notExist):
		ue = &usageError{msg: "unknown flag " + dashed(notExist.GetSpecifiedName())}
	case errors.As(err, &noValue):
		ue = &usageError{msg: fmt.Sprintf("flag %s needs a value", dashed(noValue.GetFlag().Name))}
	case errors.As(err, &invalid):
		ue = &usageError{msg: fmt.Sprintf("invalid value %q for %s: %v", invalid.GetValue(), dashed(invalid.GetFlag().Name), errors.Unwrap(invalid))}
	default:
		ue = &usageError{msg: err.Error()}
	}
	ue.hint = cmd.CommandPath() + " --help"
	return ue
}

// stdFlagValue lets pflag set a flag of a flag.FlagSet through the
// FlagSet, so that the FlagSet records it as given (isSet).
type stdFlagValue struct {
	fs   *flag.FlagSet
	name string
	v    flag.Value
	typ  string
}

func (s *stdFlagValue) String() string     { return s.v.String() }
func (s *stdFlagValue) Set(v string) error { return s.fs.Set(s.name, v) }
func (s *stdFlagValue) Type() string       { return s.typ }

// pflagFor makes the pflag of f: the same name (a one-letter name is also
// its shorthand: -q), usage and value; a bool flag takes no value.
func pflagFor(fs *flag.FlagSet, f *flag.Flag) *pflag.Flag {
	pf := pflag.PFlagFromGoFlag(f)
	pf.Value = &stdFlagValue{fs: fs, name: f.Name, v: f.Value, typ: pf.Value.Type()}
	pf.DefValue = f.DefValue
	return pf
}

// printHelp prints the help of cmd to w.
func (t *tree) printHelp(w io.Writer, cmd *cobra.Command) {
	switch l, ok := t.leaves[cmd]; {
	case cmd == t.root:
		printUsage(w)
	case ok:
		printCommandUsage(w, l.cmd, l.fs, cmd.Aliases)
	case t.groups[cmd]:
		printGroupUsage(w, cmd)
	default:
		cmd.SetOut(w)
		t.defaultHelp(cmd, nil)
	}
}

// printGroupUsage prints the help of a group of commands ("node").
func printGroupUsage(w io.Writer, cmd *cobra.Command) {
	fmt.Fprintf(w, "Usage: holdfast %s COMMAND [ARGS]\n\n%s.\n\nCommands:\n", cmd.Name(), cmd.Short)
	tw := newTable(w)
	for _, sub := range cmd.Commands() {
		if !sub.IsAvailableCommand() {
			continue
		}
		summary := sub.Short
		if len(sub.Aliases) > 0 {
			summary += " (also: " + strings.Join(sub.Aliases, ", ") + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", sub.Name(), summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun 'holdfast %s COMMAND --help' for a command's flags.\n", cmd.Name())
	fmt.Fprint(w, "Global flags: --socket PATH, --data-dir DIR (see 'holdfast help').\n")
}

// walk calls f for cmd and every command below it, in the order help
// lists them, skipping cobra's hidden ones.
func walk(cmd *cobra.Command, f func(*cobra.Command)) {
	f(cmd)
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() || sub.Name() == "help" {
			walk(sub, f)
		}
	}
}
