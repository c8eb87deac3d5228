package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/secrets"
)

// maxSecretRead bounds how much of a secret file create reads: one byte
// more than the limit, so that the server sees an oversized secret and
// answers 413 with its own message rather than the CLI sending a silently
// truncated one.
const maxSecretRead = secrets.MaxSize + 1

// labelsFlag is a repeated --label K=V.
type labelsFlag struct {
	labels map[string]string
}

func (l *labelsFlag) String() string {
	if l == nil || len(l.labels) == 0 {
		return ""
	}
	return labelsText(l.labels, ",")
}

func (l *labelsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	switch {
	case !ok:
		return errors.New("want KEY=VALUE")
	case k == "":
		return errors.New("want KEY=VALUE with a non-empty KEY")
	}
	if l.labels == nil {
		l.labels = map[string]string{}
	}
	if _, dup := l.labels[k]; dup {
		return fmt.Errorf("label %q given twice", k)
	}
	l.labels[k] = v
	return nil
}

// listFlag is a repeated string flag.
type listFlag struct {
	values []string
	what   string // what a value is, for errors: "a node ID"
}

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.values, ",")
}

func (l *listFlag) Set(s string) error {
	if s == "" {
		return fmt.Errorf("want %s", l.what)
	}
	l.values = append(l.values, s)
	return nil
}

// readSecretFile reads a secret's data from path, or stdin for "-", at most
// maxSecretRead bytes; a terminal on stdin is read as one hidden line,
// never echoed. Errors never quote the data.
func (c *cli) readSecretFile(ctx context.Context, path string) ([]byte, error) {
	if f, ok := c.stdin.(*os.File); ok && path == "-" && term.IsTerminal(int(f.Fd())) {
		data, err := c.readHidden(ctx, f, "Secret data (hidden; Enter ends it): ")
		if err != nil {
			return nil, fmt.Errorf("cannot read the secret from the terminal: %v; nothing was stored", err)
		}
		return data, nil
	}
	if path == "-" {
		data, err := io.ReadAll(io.LimitReader(c.stdin, maxSecretRead))
		if err != nil {
			return nil, fmt.Errorf("cannot read the secret from stdin: %v", err)
		}
		return data, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the secret file %s: %v", path, pathErrCause(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read the secret file %s: %v", path, pathErrCause(err))
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("cannot read the secret file %s: it is a directory; give a file, or - to read stdin", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretRead))
	if err != nil {
		return nil, fmt.Errorf("cannot read the secret file %s: %v", path, pathErrCause(err))
	}
	return data, nil
}

// pathErrCause drops the operation and path from a *PathError, which the
// caller's message already names.
func pathErrCause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func setupSecretCreate(c *cli, fs *flag.FlagSet) action {
	labels := &labelsFlag{}
	fs.Var(labels, "label", "a label `KEY=VALUE`; repeat for more")
	grants := &listFlag{what: "a node ID"}
	fs.Var(grants, "grant", "grant the secret to the node `NODE_ID` (or self); repeat for more")
	fs.Bool("q", false, "print only the secret ID (what create prints anyway)")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "NAME", "FILE|-"); err != nil {
			return err
		}
		name, path := args[0], args[1]
		data, err := c.readSecretFile(ctx, path)
		if err != nil {
			return err
		}
		defer clear(data)
		cl := c.client()
		defer cl.Close()
		nodes, err := resolveSelfGrants(ctx, cl, grants.values)
		if err != nil {
			return err
		}
		created, err := cl.CreateSecret(ctx, api.SecretCreateRequest{Name: name, Data: data, Labels: labels.labels, Grants: nodes})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.stdout, created.ID)
		return err
	}
}

// resolveSelfGrants replaces "self" in grants with this node's ID: grant
// and revoke take "self" on the server, create's grant list does not.
func resolveSelfGrants(ctx context.Context, cl *api.Client, grants []string) ([]string, error) {
	if !slices.Contains(grants, "self") {
		return grants, nil
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.NodeID == "" {
		return nil, errors.New("cannot grant to self: this node has no ID yet; run 'holdfast init' or 'holdfast join' first")
	}
	out := make([]string, len(grants))
	for i, g := range grants {
		if g == "self" {
			g = st.NodeID
		}
		out[i] = g
	}
	return out, nil
}

// normalizeSecret makes the labels and grants of m non-nil, so JSON shows
// {} and [] rather than null.
func normalizeSecret(m *api.SecretMeta) {
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	if m.Grants == nil {
		m.Grants = []string{}
	}
}

func setupSecretLs(c *cli, fs *flag.FlagSet) action {
	return listCommand(c, fs, "print only the secret IDs", (*api.Client).Secrets,
		func(s api.SecretMeta) string { return s.ID }, normalizeSecret, printSecrets, secretFilters...)
}

func setupSecretInspect(c *cli, fs *flag.FlagSet) action {
	format := outputFlag(fs)
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "NAME|ID"); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		s, err := cl.Secret(ctx, args[0])
		if err != nil {
			return err
		}
		normalizeSecret(s)
		if format.doc() {
			return format.write(c.stdout, s)
		}
		return printSecret(c.stdout, s)
	}
}

// errReported means the command has already printed its errors; it exits 1
// without another line.
var errReported = errors.New("errors reported")

func setupSecretRm(c *cli, fs *flag.FlagSet) action {
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usagef("missing NAME|ID")
		}
		cl := c.client()
		defer cl.Close()
		failed := false
		for _, ref := range args {
			err := cl.RemoveSecret(ctx, ref)
			switch {
			case err != nil && (errors.Is(err, api.ErrUnreachable) || ctx.Err() != nil):
				// The rest would fail the same way.
				if failed {
					c.report(err)
					return errReported
				}
				return err
			case err != nil:
				failed = true
				msg := err.Error()
				if !strings.Contains(msg, ref) {
					msg = ref + ": " + msg
				}
				c.errorLine(msg)
			default:
				if _, err := fmt.Fprintln(c.stdout, ref); err != nil {
					return err
				}
			}
		}
		if failed {
			return errReported
		}
		return nil
	}
}

func setupSecretUpdate(c *cli, fs *flag.FlagSet) action {
	labels := &labelsFlag{}
	fs.Var(labels, "label", "a label `KEY=VALUE`; repeat for more; the given set replaces the old one (none: no labels)")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "NAME|ID"); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		set := labels.labels
		if set == nil {
			set = map[string]string{}
		}
		if err := cl.SetSecretLabels(ctx, args[0], set); err != nil {
			return err
		}
		if len(set) == 0 {
			_, err := fmt.Fprintf(c.stdout, "Secret %s updated: no labels.\n", args[0])
			return err
		}
		_, err := fmt.Fprintf(c.stdout, "Secret %s updated: labels %s.\n", args[0], labelsText(set, ", "))
		return err
	}
}

func setupSecretGrant(c *cli, fs *flag.FlagSet) action {
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "NAME|ID", "NODE_ID"); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		if err := cl.GrantSecret(ctx, args[0], args[1]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.stdout, "Secret %s granted to node %s.\n", args[0], args[1])
		return err
	}
}

func setupSecretRevoke(c *cli, fs *flag.FlagSet) action {
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "NAME|ID", "NODE_ID"); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		if err := cl.RevokeSecret(ctx, args[0], args[1]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.stdout, "Secret %s revoked from node %s.\n", args[0], args[1])
		return err
	}
}

// labelsText prints labels as sorted KEY=VALUE pairs joined by sep.
func labelsText(labels map[string]string, sep string) string {
	keys := slices.Sorted(maps.Keys(labels))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, sep)
}

// shortDigest is the first 12 hex digits of a "sha256:…" digest.
func shortDigest(d string) string {
	hex := strings.TrimPrefix(d, "sha256:")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return orDash(hex)
}

// fmtSize prints a size in bytes, KiB above 1 KiB.
func fmtSize(n int) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}

// printSecrets prints `secret ls` as a table.
func printSecrets(w io.Writer, list []api.SecretMeta) error {
	tw := newTable(w)
	fmt.Fprint(tw, "NAME\tID\tSIZE\tDIGEST\tLABELS\tGRANTS\tCREATED\n")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.ID, fmtSize(s.Size), shortDigest(s.Digest),
			orDash(labelsText(s.Labels, ",")), grantCount(s.Grants), fmtTime(s.CreatedAt))
	}
	return tw.Flush()
}

// grantCount is the GRANTS column of secret ls: how many nodes, "-" for
// none ('secret inspect' lists them).
func grantCount(grants []string) string {
	if len(grants) == 0 {
		return "-"
	}
	return strconv.Itoa(len(grants))
}

// printSecret prints `secret inspect` as text: the metadata, never the data.
func printSecret(w io.Writer, s *api.SecretMeta) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "ID:\t%s\n", s.ID)
	fmt.Fprintf(tw, "Name:\t%s\n", s.Name)
	fmt.Fprintf(tw, "Size:\t%s (%d bytes)\n", fmtSize(s.Size), s.Size)
	fmt.Fprintf(tw, "Digest:\t%s\n", orDash(s.Digest))
	fmt.Fprintf(tw, "Created:\t%s\n", fmtTime(s.CreatedAt))
	fmt.Fprintf(tw, "Updated:\t%s\n", fmtTime(s.UpdatedAt))
	keys := slices.Sorted(maps.Keys(s.Labels))
	if len(keys) == 0 {
		fmt.Fprint(tw, "Labels:\t-\n")
	}
	for i, k := range keys {
		head := ""
		if i == 0 {
			head = "Labels:"
		}
		fmt.Fprintf(tw, "%s\t%s=%s\n", head, k, s.Labels[k])
	}
	if len(s.Grants) == 0 {
		fmt.Fprint(tw, "Granted to:\t-\n")
	}
	for i, g := range s.Grants {
		head := ""
		if i == 0 {
			head = "Granted to:"
		}
		fmt.Fprintf(tw, "%s\t%s\n", head, g)
	}
	return tw.Flush()
}
