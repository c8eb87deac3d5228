package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// errHelp is returned by parseFlags when the arguments ask for help
// (-h, --help).
var errHelp = errors.New("help requested")

// usageError is a mistake in how holdfast was called: exit status 2.
type usageError struct {
	msg string
	// hint is what to run for help; empty means 'holdfast help'.
	hint string
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// parseFlags sets the flags of fs that occur anywhere in args and returns
// the other arguments in their order. Flags take the forms -name, --name,
// --name=value and --name value; a bool flag takes no separate value. "--"
// ends the flags.
//
// With keepUnknown (used for the global flags, before the command is known)
// flags fs does not define stay in the result, and so does "--" with what
// follows it. Without it an unknown flag is a usage error, "-h" and "--help"
// return errHelp, and "--" is dropped.
func parseFlags(fs *flag.FlagSet, args []string, keepUnknown bool) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			if keepUnknown {
				return append(rest, args[i:]...), nil
			}
			return append(rest, args[i+1:]...), nil
		}
		if len(arg) < 2 || arg[0] != '-' {
			rest = append(rest, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			switch {
			case keepUnknown:
				rest = append(rest, arg)
				continue
			case name == "h" || name == "help":
				return nil, errHelp
			default:
				return nil, usagef("unknown flag %s", dashed(name))
			}
		}
		if !hasValue {
			if isBoolFlag(f) {
				value = "true"
			} else {
				if i+1 >= len(args) {
					return nil, usagef("flag %s needs a value", dashed(name))
				}
				i++
				value = args[i]
			}
		}
		if err := fs.Set(name, value); err != nil {
			return nil, usagef("invalid value %q for %s: %v", value, dashed(name), err)
		}
	}
	return rest, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// dashed spells a flag name the way the help does: -q, --format.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// isSet reports whether the flag called name was given.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// choiceFlag is a string flag that takes one of a fixed set of values.
type choiceFlag struct {
	value   string
	choices []string
}

func newChoice(fs *flag.FlagSet, name, def, usage string, choices ...string) *choiceFlag {
	c := &choiceFlag{value: def, choices: choices}
	fs.Var(c, name, usage)
	return c
}

func (c *choiceFlag) String() string {
	if c == nil {
		return ""
	}
	return c.value
}

func (c *choiceFlag) Set(s string) error {
	for _, v := range c.choices {
		if s == v {
			c.value = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(c.choices, ", "))
}

// formatFlag defines --format: "table" (the default) or "json", for
// commands that print a report rather than items (bench); listings and
// inspections take templates too (outputFlag).
func formatFlag(fs *flag.FlagSet) *choiceFlag {
	return newChoice(fs, "format", "table", "output `FORMAT`: table or json", "table", "json")
}

func (c *choiceFlag) json() bool { return c.value == "json" }

// durationFlag is a duration in Go syntax ("90m", "2160h"), checked when
// given and kept as written, since the API takes the string.
type durationFlag struct {
	text string
	set  bool
}

func (d *durationFlag) String() string {
	if d == nil {
		return ""
	}
	return d.text
}

func (d *durationFlag) Set(s string) error {
	if _, err := time.ParseDuration(s); err != nil {
		return errors.New("want a duration such as 90m or 2160h")
	}
	d.text, d.set = s, true
	return nil
}

// ptr returns the duration for a request field: nil when not given.
func (d *durationFlag) ptr() *string {
	if !d.set {
		return nil
	}
	s := d.text
	return &s
}

// wantArgs checks the number of positional arguments.
func wantArgs(args []string, names ...string) error {
	if len(args) == len(names) {
		return nil
	}
	switch {
	case len(names) == 0:
		return usagef("unexpected argument %q: this command takes none", args[0])
	case len(args) < len(names):
		return usagef("missing %s", strings.Join(names[len(args):], " "))
	default:
		return usagef("too many arguments: want %s, got %q", strings.Join(names, " "), strings.Join(args, " "))
	}
}
