package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

// newTable returns a tabwriter for aligned columns; Flush it when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// writeJSON prints v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// fmtTime prints t in RFC 3339, UTC; "-" when unset.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printStatus prints `holdfast status` as text.
func printStatus(w io.Writer, st *api.Status) error {
	if st.State == api.StateUninitialized {
		_, err := fmt.Fprint(w, "This node is not part of a cluster (state: uninitialized).\n"+
			"Create a cluster with 'holdfast init', or join one with 'holdfast join --token TOKEN HOST:PORT'.\n")
		return err
	}
	if st.State == api.StateRemoved {
		return printRemoved(w, st)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Node ID:\t%s\n", orDash(st.NodeID))
	fmt.Fprintf(tw, "Cluster ID:\t%s\n", orDash(st.ClusterID))
	fmt.Fprintf(tw, "Role:\t%s\n", orDash(string(st.Role)))
	fmt.Fprintf(tw, "State:\t%s\n", st.State)
	fmt.Fprintf(tw, "Address:\t%s\n", orDash(st.Addr))
	fmt.Fprintf(tw, "Autolock:\t%s\n", onOff(st.Autolock))
	fmt.Fprintf(tw, "Leader:\t%s\n", leaderText(st))
	if st.Role == ca.RoleManager {
		r := st.Raft
		fmt.Fprintf(tw, "Raft:\tterm %d, last index %d, commit index %d, applied index %d\n",
			r.Term, r.LastIndex, r.CommitIndex, r.AppliedIndex)
		if st.Level != 0 {
			fmt.Fprintf(tw, "Level:\t%d (cluster version %d)\n", st.Level, st.ClusterVersion)
		}
		if st.ClockSkew != nil {
			fmt.Fprintf(tw, "Clock skew:\t%s\n", clockSkewText(st.ClockSkew))
		}
	}
	if g := st.Gossip; g != nil {
		fmt.Fprintf(tw, "Gossip:\t%s, %d members alive, primary key Lamport %d\n", g.Addr, g.Members, g.PrimaryLamport)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.State == api.StateLocked {
		fmt.Fprint(w, "\nThis node is locked; run 'holdfast unlock' to unlock it.\n")
	}
	fmt.Fprint(w, catchingUpHint(st))
	if u := st.NeedsUpgrade; u != nil {
		fmt.Fprintf(w, "\nThis manager stopped at log entry %d (%s version %d), which its build (level %d) cannot apply.\n"+
			"It applies nothing more and serves no reads; restart it on a build that knows that command.\n",
			u.Index, u.Command, u.Version, st.Level)
	}
	if s := st.ClockSkew; s != nil && s.Refusing {
		fmt.Fprint(w, "\nThis manager's clock is further off the other managers' than allowed: it refuses to issue certificates.\n"+
			"Fix this machine's clock (NTP); see docs/OPERATIONS.md, \"Clocks\".\n")
	}
	if len(st.Managers) > 0 {
		fmt.Fprint(w, "\nManagers:\n")
		tw = newTable(w)
		fmt.Fprint(tw, "NODE ID\tADDR\tLEADER\tVOTER\tREACHABLE\n")
		for _, m := range st.Managers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.NodeID, orDash(m.Addr), yesNo(m.Leader), yesNo(m.Voter), yesNo(m.Reachable))
		}
		return tw.Flush()
	}
	return nil
}

func leaderText(st *api.Status) string {
	switch {
	case st.Leader.NodeID == "" && (st.State == api.StateReady || st.State == api.StateCatchingUp):
		return "none: no leader is elected (the managers may have lost quorum)"
	case st.Leader.NodeID == "":
		return "-"
	case st.IsLeader:
		return fmt.Sprintf("%s (%s), this node", st.Leader.NodeID, orDash(st.Leader.Addr))
	default:
		return fmt.Sprintf("%s (%s)", st.Leader.NodeID, orDash(st.Leader.Addr))
	}
}

// printNodes prints `node ls` as a table.
// printListing prints a listing as its IDs (-q), as one JSON document, or
// as a table.
// listCommand is a listing command: no arguments, -q for the IDs only,
// --format json, else table. list fetches the items; each, if not nil,
// tidies one item for printing.
// filters, if any, are the keys of --filter.
func listCommand[T any](c *cli, fs *flag.FlagSet, quietHelp string, list func(*api.Client, context.Context) ([]T, error), id func(T) string, each func(*T), table func(io.Writer, []T) error, filters ...filterKey[T]) action {
	quiet := fs.Bool("q", false, quietHelp)
	format := outputFlag(fs)
	var filterArgs *listFlag
	if len(filters) > 0 {
		filterArgs = filterFlag(fs, filters)
	}
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		match := func(T) bool { return true }
		if filterArgs != nil {
			var err error
			if match, err = parseFilters(filterArgs.values, filters); err != nil {
				return err
			}
		}
		cl := c.client()
		defer cl.Close()
		items, err := list(cl, ctx)
		if err != nil {
			return err
		}
		if items == nil {
			items = []T{}
		}
		if each != nil {
			for i := range items {
				each(&items[i])
			}
		}
		items = slices.DeleteFunc(items, func(it T) bool { return !match(it) })
		return printListing(c, *quiet, format, items, id, table)
	}
}

func printListing[T any](c *cli, quiet bool, format *formatValue, items []T, id func(T) string, table func(io.Writer, []T) error) error {
	// One write per 64 KiB, not one or more per item: a listing of
	// 100,000 secrets was 100,000 system calls (-q) and over a million
	// (the table) (docs/PERFORMANCE.md, "A large state").
	out := bufio.NewWriterSize(c.stdout, 64<<10)
	err := writeListing(out, quiet, format, items, id, table)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

func writeListing[T any](w io.Writer, quiet bool, format *formatValue, items []T, id func(T) string, table func(io.Writer, []T) error) error {
	switch {
	case quiet:
		for _, it := range items {
			if _, err := fmt.Fprintln(w, id(it)); err != nil {
				return err
			}
		}
		return nil
	case format.template():
		for _, it := range items {
			if err := format.write(w, it); err != nil {
				return err
			}
		}
		return nil
	case format.doc():
		return format.write(w, items)
	}
	return table(w, items)
}

func printNodes(w io.Writer, nodes []api.Node) error {
	tw := newTable(w)
	fmt.Fprint(tw, "ID\tROLE\tADDR\tSTATUS\tLEADER\tVOTER\tCERT EXPIRES\tLEVEL\n")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Role, orDash(n.Addr), orDash(n.Status),
			yesNo(n.Leader), yesNo(n.Voter), fmtTime(n.CertExpiresAt), levelText(n.Level))
	}
	return tw.Flush()
}

// printNode prints `node inspect` as text.
func printNode(w io.Writer, n *api.Node) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "ID:\t%s\n", n.ID)
	fmt.Fprintf(tw, "Role:\t%s\n", n.Role)
	fmt.Fprintf(tw, "Address:\t%s\n", orDash(n.Addr))
	fmt.Fprintf(tw, "Status:\t%s\n", orDash(n.Status))
	fmt.Fprintf(tw, "Leader:\t%s\n", yesNo(n.Leader))
	fmt.Fprintf(tw, "Voter:\t%s\n", yesNo(n.Voter))
	fmt.Fprintf(tw, "Cert expires:\t%s\n", fmtTime(n.CertExpiresAt))
	fmt.Fprintf(tw, "Created:\t%s\n", fmtTime(n.CreatedAt))
	if n.Role == ca.RoleManager {
		fmt.Fprintf(tw, "Level:\t%s\n", levelText(n.Level))
	}
	return tw.Flush()
}

// levelText shows a recorded level; "-" for none recorded.
func levelText(l int) string {
	if l == 0 {
		return "-"
	}
	return strconv.Itoa(l)
}

// printInit prints what `holdfast init` did and how to grow the cluster.
func printInit(w io.Writer, r *api.InitResponse) error {
	fmt.Fprintf(w, "Cluster initialized: %s\n", r.ClusterID)
	fmt.Fprintf(w, "This node (%s) is now its first manager.\n\n", r.NodeID)
	fmt.Fprint(w, "To add a worker, run on it:\n")
	fmt.Fprintf(w, "    %s\n", joinCommand(r.WorkerToken, r.Addr))
	fmt.Fprint(w, "To add a manager, run on it:\n")
	fmt.Fprintf(w, "    %s\n", joinCommand(r.ManagerToken, r.Addr))
	return printUnlockKey(w, r.UnlockKey)
}

// keyWarning follows every unlock key holdfast prints.
const keyWarning = "Keep it safe: a restarted manager stays locked until it is unlocked with this key. It is never written to disk."

// printUnlockKey prints the unlock key, if any, labelled, on a line of its
// own, and the warning.
func printUnlockKey(w io.Writer, key string) error {
	if key == "" {
		return nil
	}
	_, err := fmt.Fprintf(w, "\nUnlock key:\n%s\n\n%s\n", key, keyWarning)
	return err
}

func joinCommand(token, addr string) string {
	return fmt.Sprintf("holdfast join --token %s %s", token, orDash(addr))
}

// printJoinToken prints the instructions for joining with t.
func printJoinToken(w io.Writer, t *api.JoinToken, addr string, rotated bool) error {
	if rotated {
		fmt.Fprintf(w, "Rotated the %s join token; the old one no longer works.\n", t.Role)
	}
	_, err := fmt.Fprintf(w, "To add a %s to this cluster, run on it:\n    %s\n", t.Role, joinCommand(t.Token, addr))
	return err
}

// versionInfo is `holdfast version --format json`.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	// Level is what this build can apply, and Commands lists it as
	// "type/version" (docs/OPERATIONS.md, "Versions and levels").
	Level    int      `json:"level"`
	Commands []string `json:"commands"`
}

func printVersion(w io.Writer, v versionInfo) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "Version:\t%s\n", v.Version)
	fmt.Fprintf(tw, "Commit:\t%s\n", orDash(v.Commit))
	fmt.Fprintf(tw, "Go version:\t%s\n", v.GoVersion)
	fmt.Fprintf(tw, "Level:\t%d\n", v.Level)
	fmt.Fprintf(tw, "Commands:\t%s\n", strings.Join(v.Commands, " "))
	return tw.Flush()
}

// isTerminal reports whether w is a terminal (/dev/null, a character
// device too, is not).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress reports the steps of a long wait: on a terminal as one line
// that is rewritten, cut to the terminal's width, otherwise as plain lines.
type progress struct {
	w      io.Writer
	tty    bool
	active bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w, tty: isTerminal(w)} }

func (p *progress) step(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K"+cutToWidth(msg, terminalWidth(p.w)))
		p.active = true
		return
	}
	fmt.Fprintln(p.w, msg)
}

// terminalWidth is the width in columns of the terminal w; 0 when unknown.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}

// cutToWidth cuts msg to fit a line of width columns without wrapping
// (one column short of it, where some terminals wrap at once), ending it
// with "…" when cut. A width of 0 (unknown) leaves msg whole. Every rune
// counts one column, which holds for what progress lines contain.
func cutToWidth(msg string, width int) string {
	if width <= 0 {
		return msg
	}
	room := width - 1
	if utf8.RuneCountInString(msg) <= room {
		return msg
	}
	if room < 1 {
		return ""
	}
	r := []rune(msg)
	return string(r[:room-1]) + "…"
}

// done clears the progress line on a terminal.
func (p *progress) done() {
	if p.tty && p.active {
		fmt.Fprint(p.w, "\r\033[K")
		p.active = false
	}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%,=", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
