package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

// testFlags is a flag set like a command's: bool, string, short bool,
// duration and choice flags.
type testFlags struct {
	fs     *flag.FlagSet
	force  *bool
	quiet  *bool
	token  *string
	expiry durationFlag
	format *choiceFlag
}

func newTestFlags() *testFlags {
	f := &testFlags{fs: flag.NewFlagSet("test", flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.force = f.fs.Bool("force", false, "")
	f.quiet = f.fs.Bool("q", false, "")
	f.token = f.fs.String("token", "", "")
	f.fs.Var(&f.expiry, "cert-expiry", "")
	f.format = formatFlag(f.fs)
	return f
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		positional []string
		force      bool
		quiet      bool
		token      string
		expiry     string
		format     string
		usageErr   string // substring of the usage error; empty for none
		help       bool
	}{
		{name: "nothing", args: nil, format: "table"},
		{name: "positional only", args: []string{"a", "b"}, positional: []string{"a", "b"}, format: "table"},
		{name: "flag after positional", args: []string{"rm", "ID", "--force"}, positional: []string{"rm", "ID"}, force: true, format: "table"},
		{name: "flag before positional", args: []string{"--force", "ID"}, positional: []string{"ID"}, force: true, format: "table"},
		{name: "single dash long flag", args: []string{"-force", "ID"}, positional: []string{"ID"}, force: true, format: "table"},
		{name: "value with equals", args: []string{"--token=abc", "h:1"}, positional: []string{"h:1"}, token: "abc", format: "table"},
		{name: "value separate", args: []string{"h:1", "--token", "abc"}, positional: []string{"h:1"}, token: "abc", format: "table"},
		{name: "value that looks like a flag", args: []string{"--token", "-x-"}, token: "-x-", format: "table"},
		{name: "empty value with equals", args: []string{"--token="}, token: "", format: "table"},
		{name: "bool with explicit false", args: []string{"--force=false", "ID"}, positional: []string{"ID"}, format: "table"},
		{name: "bool with explicit true", args: []string{"--force=true"}, force: true, format: "table"},
		{name: "short flag", args: []string{"-q", "worker"}, positional: []string{"worker"}, quiet: true, format: "table"},
		{name: "short flag after positional", args: []string{"worker", "-q"}, positional: []string{"worker"}, quiet: true, format: "table"},
		{name: "double dash terminator", args: []string{"--force", "--", "--token", "-q"}, positional: []string{"--token", "-q"}, force: true, format: "table"},
		{name: "lone dash is positional", args: []string{"-", "--force"}, positional: []string{"-"}, force: true, format: "table"},
		{name: "duration", args: []string{"--cert-expiry", "2160h"}, expiry: "2160h", format: "table"},
		{name: "format json", args: []string{"--format", "json"}, format: "json"},
		{name: "format json with equals", args: []string{"x", "--format=json"}, positional: []string{"x"}, format: "json"},

		{name: "unknown flag", args: []string{"ID", "--frobnicate"}, usageErr: "unknown flag --frobnicate"},
		{name: "unknown short flag", args: []string{"-x"}, usageErr: "unknown flag -x"},
		{name: "missing value", args: []string{"ID", "--token"}, usageErr: "flag --token needs a value"},
		{name: "bad duration", args: []string{"--cert-expiry", "90 days"}, usageErr: `invalid value "90 days" for --cert-expiry`},
		{name: "bad bool", args: []string{"--force=maybe"}, usageErr: `invalid value "maybe" for --force`},
		{name: "bad format", args: []string{"--format", "xml"}, usageErr: "want one of table, json"},
		{name: "help", args: []string{"ID", "--help"}, help: true},
		{name: "short help", args: []string{"-h"}, help: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFlags()
			got, err := parseFlags(f.fs, tt.args, false)
			switch {
			case tt.help:
				if !errors.Is(err, errHelp) {
					t.Fatalf("err = %v; want errHelp", err)
				}
				return
			case tt.usageErr != "":
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(ue.msg, tt.usageErr) {
					t.Fatalf("err = %v; want a usage error containing %q", err, tt.usageErr)
				}
				return
			case err != nil:
				t.Fatalf("err = %v; want none", err)
			}
			if !slices.Equal(got, tt.positional) {
				t.Errorf("positional = %q; want %q", got, tt.positional)
			}
			if *f.force != tt.force || *f.quiet != tt.quiet || *f.token != tt.token {
				t.Errorf("force, q, token = %v, %v, %q; want %v, %v, %q", *f.force, *f.quiet, *f.token, tt.force, tt.quiet, tt.token)
			}
			if f.expiry.text != tt.expiry || f.format.value != tt.format {
				t.Errorf("cert-expiry, format = %q, %q; want %q, %q", f.expiry.text, f.format.value, tt.expiry, tt.format)
			}
		})
	}
}

func TestParseFlagsKeepUnknown(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		rest   []string
		socket string
		data   string
	}{
		{name: "before command", args: []string{"--socket", "/s", "status"}, rest: []string{"status"}, socket: "/s"},
		{name: "after command", args: []string{"status", "--socket=/s"}, rest: []string{"status"}, socket: "/s"},
		{name: "among command flags", args: []string{"node", "rm", "ID", "--data-dir", "/d", "--force"}, rest: []string{"node", "rm", "ID", "--force"}, data: "/d"},
		{name: "unknown flags stay in order", args: []string{"status", "--format", "json", "-q"}, rest: []string{"status", "--format", "json", "-q"}},
		{name: "help stays", args: []string{"--help"}, rest: []string{"--help"}},
		{name: "not after --", args: []string{"x", "--", "--socket", "/s"}, rest: []string{"x", "--", "--socket", "/s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("globals", flag.ContinueOnError)
			socket := fs.String("socket", "", "")
			data := fs.String("data-dir", "", "")
			rest, err := parseFlags(fs, tt.args, true)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !slices.Equal(rest, tt.rest) {
				t.Errorf("rest = %q; want %q", rest, tt.rest)
			}
			if *socket != tt.socket || *data != tt.data {
				t.Errorf("socket, data-dir = %q, %q; want %q, %q", *socket, *data, tt.socket, tt.data)
			}
		})
	}
}

func TestSocketResolution(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantDir string
	}{
		{name: "default", want: "/var/lib/holdfast/holdfast.sock", wantDir: "/var/lib/holdfast"},
		{name: "data dir env", env: map[string]string{"HOLDFAST_DATA_DIR": "/e"}, want: "/e/holdfast.sock", wantDir: "/e"},
		{name: "socket env", env: map[string]string{"HOLDFAST_SOCKET": "/env.sock", "HOLDFAST_DATA_DIR": "/e"}, want: "/env.sock", wantDir: "/e"},
		{name: "socket flag beats env", args: []string{"--socket", "/f.sock"}, env: map[string]string{"HOLDFAST_SOCKET": "/env.sock"}, want: "/f.sock", wantDir: "/var/lib/holdfast"},
		{name: "data dir flag beats env", args: []string{"--data-dir", "/d"}, env: map[string]string{"HOLDFAST_SOCKET": "/env.sock", "HOLDFAST_DATA_DIR": "/e"}, want: "/d/holdfast.sock", wantDir: "/d"},
		{name: "socket flag beats data dir flag", args: []string{"--data-dir", "/d", "--socket", "/f.sock"}, want: "/f.sock", wantDir: "/d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			c := &cli{stdout: io.Discard, stderr: &stderr, getenv: func(k string) string { return tt.env[k] }}
			if code := c.run(t.Context(), append(append([]string{}, tt.args...), "version")); code != exitOK {
				t.Fatalf("version: exit %d, stderr %q", code, stderr.String())
			}
			if got := c.socket(); got != tt.want {
				t.Errorf("socket = %q; want %q", got, tt.want)
			}
			if got := c.dataDir(); got != tt.wantDir {
				t.Errorf("data dir = %q; want %q", got, tt.wantDir)
			}
		})
	}
}
