package main

//go:generate go test -run ^TestCLIReference$ -update .

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/holdfast/holdfast/api"
)

// The command reference, docs/CLI.md, is generated from the command tree:
// the help of every group and command as 'holdfast help' prints it, and
// the fields of every --format document from the types printed.
// TestCLIReference fails when the file is not current; 'go generate
// ./cmd/holdfast' (or that test with -update) rewrites it.

// formatTypes are the types each listing or inspecting command prints
// with --format json (a listing: a list of them) and runs a --format
// template on (a listing: on each).
var formatTypes = []struct {
	command string
	list    bool
	v       any
}{
	{"status", false, api.Status{}},
	{"version", false, versionInfo{}},
	{"ca", false, api.CAInfo{}},
	{"unlock-key", false, api.UnlockKeyResponse{}},
	{"join-token", false, api.JoinToken{}},
	{"node ls", true, api.Node{}},
	{"node inspect", false, api.Node{}},
	{"secret ls", true, api.SecretMeta{}},
	{"secret inspect", false, api.SecretMeta{}},
	{"keys ls", true, api.KeyInfo{}},
}

const referenceIntro = `# holdfast command reference

<!-- Generated from the command tree by 'go generate ./cmd/holdfast'; do not edit. -->

One binary, ` + "`holdfast`" + `. ` + "`holdfast daemon`" + ` runs a node; every other command is
a client of the local daemon, through its control socket.

## Conventions

- **Finding the daemon.** ` + "`--socket PATH`" + ` (env ` + "`HOLDFAST_SOCKET`" + `), default
  ` + "`<data-dir>/holdfast.sock`" + `, with ` + "`--data-dir DIR`" + ` (env ` + "`HOLDFAST_DATA_DIR`" + `, default
  ` + "`/var/lib/holdfast`" + `). Both are global flags, before or after the command.
- **Flags and arguments** mix in any order (` + "`secret create NAME - --label a=b`" + `);
  ` + "`--`" + ` ends the flags.
- **Exit codes.** ` + "`0`" + ` success, ` + "`1`" + ` an error, ` + "`2`" + ` a usage error (an unknown
  command or flag, a missing argument, a bad value). Errors go to stderr as one
  line starting ` + "`holdfast: `" + `, saying what is wrong and what to do; a mistyped
  command gets a suggestion (` + "`did you mean 'status'?`" + `).
- **Help.** ` + "`holdfast help [COMMAND]`" + `, ` + "`holdfast COMMAND --help`" + ` or ` + "`-h`" + `, for every
  group (` + "`holdfast help secret`" + `) and command. ` + "`holdfast --version`" + ` prints what
  ` + "`holdfast version`" + ` prints.
- **Aliases.** ` + "`ls`" + ` is also ` + "`list`" + `, ` + "`rm`" + ` also ` + "`remove`" + ` (` + "`holdfast secret list`" + `).
- **Output.** Listing and inspecting commands print an aligned table (or text)
  by default; ` + "`--format json`" + ` prints one JSON document (a listing: a list);
  ` + "`--format '{{.name}} {{.id}}'`" + ` runs a Go template once per item of a listing,
  or once for an inspected object. A template's fields are the JSON field names
  listed under [Output fields](#output-fields); besides text/template's own
  functions it has ` + "`json`" + ` (` + "`{{json .labels}}`" + `), ` + "`join`" + ` (` + "`{{join .grants \",\"}}`" + `),
  ` + "`upper`" + ` and ` + "`lower`" + `. ` + "`-q`" + ` prints only the essential value (IDs, a token, a key).
- **Filters.** ` + "`node ls`" + ` and ` + "`secret ls`" + ` take ` + "`--filter KEY=VALUE`" + `, repeatable: the
  same key given twice matches either value, different keys must all match; an
  unknown key is a usage error. ` + "`node ls`" + `: ` + "`role`" + ` (manager, worker), ` + "`status`" + `,
  ` + "`id`" + ` or ` + "`name`" + ` (a prefix of the node ID; nodes are named by their ID).
  ` + "`secret ls`" + `: ` + "`name`" + ` and ` + "`id`" + ` (a prefix), ` + "`label=KEY=VALUE`" + ` or ` + "`label=KEY`" + `
  (the label is set, to any value).
- **Secrets** are read from a file or ` + "`-`" + ` (stdin), never from a flag. With a
  terminal on stdin, ` + "`secret create NAME -`" + ` prompts and reads one line without
  echo (the line, without its newline, is the secret); piped, it reads to the end,
  so ` + "`printf '%s' \"$value\" | holdfast secret create NAME -`" + ` stores no newline.
- **Progress.** Long operations (CA rotation, backups, ` + "`dev`" + `) show progress on
  stderr: on a terminal one line, redrawn and cut to the terminal's width;
  piped, a plain line per step (CA rotation: when the count changes), never a
  redrawn count.
- **CA rotation.** ` + "`ca --rotate`" + ` starts a rotation and follows it; ` + "`ca --follow`" + `
  only follows the one in progress and never starts one (with none in
  progress it says so and exits 0); ` + "`ca --rotate --detach`" + ` starts one and returns.
- **Shell completion.** ` + "`holdfast completion bash|zsh|fish|powershell`" + ` prints a
  script; for bash: ` + "`source <(holdfast completion bash)`" + `.
- Durations use Go syntax (` + "`90m`" + `, ` + "`2160h`" + `).
`

// writeReference writes docs/CLI.md for the tree t.
func (t *tree) writeReference(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString(referenceIntro)

	// Every command in the order of 'holdfast help', each group before
	// its first command, then the commands cobra adds.
	var cmds []*cobra.Command
	seen := map[*cobra.Command]bool{}
	add := func(words ...string) {
		cmd, rest, err := t.root.Find(words)
		if err != nil || len(rest) > 0 || seen[cmd] {
			return
		}
		seen[cmd] = true
		cmds = append(cmds, cmd)
	}
	add()
	for _, cm := range commands() {
		words := strings.Fields(cm.name)
		if len(words) > 1 {
			add(words[0])
		}
		add(words...)
	}
	add("completion")
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		add("completion", sh)
	}

	b.WriteString("\n## Commands\n\n")
	for _, cmd := range cmds {
		fmt.Fprintf(&b, "- [%s](#%s)\n", cmd.CommandPath(), anchor(cmd.CommandPath()))
	}
	for _, cmd := range cmds {
		fmt.Fprintf(&b, "\n## %s\n\n```text\n", cmd.CommandPath())
		var help bytes.Buffer
		t.printHelp(&help, cmd)
		b.WriteString(strings.TrimRight(help.String(), "\n"))
		b.WriteString("\n```\n")
	}

	b.WriteString("\n## Output fields\n\n")
	b.WriteString("The fields of `--format json` and of `--format` templates, by command. They are\n" +
		"the fields of the HTTP API's answers ([API.md](API.md)), in `snake_case`, times in\n" +
		"RFC 3339; new fields may be added, none is renamed or removed.\n")
	for _, ft := range formatTypes {
		what := "an object"
		if ft.list {
			what = "a list of objects, each"
		}
		fmt.Fprintf(&b, "\n### %s\n\n`holdfast %s --format json` prints %s with:\n\n", ft.command, ft.command, what)
		writeFields(&b, reflect.TypeOf(ft.v), "")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// anchor is the heading anchor GitHub and most renderers give title.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

var timeType = reflect.TypeOf(time.Time{})

// writeFields lists the JSON fields of the struct type t, nested objects
// indented under their field.
func writeFields(w io.Writer, t reflect.Type, indent string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		note := ""
		if strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
			note = ", left out when empty"
		}
		ft, desc := f.Type, ""
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
			if note == "" {
				note = ", or null"
			}
		}
		switch {
		case ft == timeType:
			desc = "time (RFC 3339)"
		case ft.Kind() == reflect.Struct:
			desc = "object"
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			desc = "list of objects"
		case ft.Kind() == reflect.Slice:
			desc = "list of " + kindName(ft.Elem())
		case ft.Kind() == reflect.Map:
			desc = "object of " + kindName(ft.Key()) + " to " + kindName(ft.Elem())
		default:
			desc = kindName(ft)
		}
		fmt.Fprintf(w, "%s- `%s`: %s%s\n", indent, name, desc, note)
		switch {
		case ft.Kind() == reflect.Struct && ft != timeType:
			writeFields(w, ft, indent+"  ")
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != timeType:
			writeFields(w, ft.Elem(), indent+"  ")
		}
	}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}
