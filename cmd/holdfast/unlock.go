package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/holdfast/holdfast/api"
)

// maxKeyRead bounds what unlock reads as a key: keys and shares are short.
const maxKeyRead = 64 << 10

func setupUnlock(c *cli, fs *flag.FlagSet) action {
	keyFile := fs.String("key-file", "", "read the unlock key (or one share of it) from `FILE` instead of stdin")
	return func(ctx context.Context, args []string) error {
		if len(args) > 0 {
			// Never echo the argument back: it may be the key.
			return usagef("unlock takes no arguments: give the key on stdin or with --key-file FILE, never on the command line, where other users of this machine can see it")
		}
		if isSet(fs, "key-file") && *keyFile == "" {
			return usagef("--key-file needs a file")
		}
		key, err := c.readUnlockKey(ctx, *keyFile)
		if err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		resp, err := cl.Unlock(ctx, api.UnlockRequest{Key: key})
		if err != nil {
			return err
		}
		return printUnlocked(c.stdout, resp)
	}
}

// readUnlockKey reads the key from path, else from stdin; on a terminal it
// prompts on stderr and reads without echo. The key comes back trimmed.
func (c *cli) readUnlockKey(ctx context.Context, path string) (string, error) {
	var b []byte
	var err error
	from := "on stdin"
	switch f, ok := c.stdin.(*os.File); {
	case path != "" && path != "-":
		from = "in the --key-file " + path
		b, err = readKeyFile(path)
	case ok && isTTY(f):
		fmt.Fprint(c.stderr, "Unlock key: ")
		b, err = readNoEcho(ctx, f)
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("cannot read the unlock key from the terminal: %v; the node stays locked", err)
		}
	default:
		b, err = io.ReadAll(io.LimitReader(c.stdin, maxKeyRead))
		if err != nil {
			err = fmt.Errorf("cannot read the unlock key from stdin: %v", err)
		}
	}
	if err != nil {
		return "", err
	}
	key := string(bytes.TrimSpace(b))
	clear(b)
	if key == "" {
		return "", fmt.Errorf("no unlock key %s: give the key (or one share of it) on stdin or with --key-file FILE", from)
	}
	return key, nil
}

// readKeyFile reads an unlock key file, refusing anything far larger than
// a key.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the --key-file %s: %v; check the path and its permissions", path, pathErrCause(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyRead+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("cannot read the --key-file %s: %v", path, pathErrCause(err))
	case len(b) > maxKeyRead:
		return nil, fmt.Errorf("the --key-file %s is too large to hold an unlock key", path)
	}
	return b, nil
}

// readLine reads up to a newline (not returned) or the end of r, one byte
// at a time so that nothing after the line is consumed.
func readLine(r io.Reader) ([]byte, error) {
	var line []byte
	var b [1]byte
	for len(line) <= maxKeyRead {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				return line, nil
			}
			line = append(line, b[0])
		}
		if errors.Is(err, io.EOF) {
			return line, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, errors.New("the line is too long for an unlock key")
}

// printUnlocked reports an unlock: done, or how many shares are in.
func printUnlocked(w io.Writer, r *api.UnlockResponse) error {
	var err error
	switch {
	case r.State == api.StateReady:
		_, err = fmt.Fprintln(w, "Node unlocked.")
	case r.SharesNeeded > 0:
		_, err = fmt.Fprintf(w, "%d/%d shares: enter the next share with 'holdfast unlock'\n", r.Shares, r.SharesNeeded)
	default:
		_, err = fmt.Fprintf(w, "The node is still %s.\n", orDash(r.State))
	}
	return err
}

func setupUnlockKey(c *cli, fs *flag.FlagSet) action {
	rotate := fs.Bool("rotate", false, "replace the unlock key with a new one and show it")
	shares := fs.Int("shares", 0, "with --rotate: split the new key into `N` shares")
	threshold := fs.Int("threshold", 0, "with --rotate and --shares: how many shares (`M`) unlock a node")
	quiet := fs.Bool("q", false, "print only the key (with --shares, only the shares, one a line)")
	format := outputFlag(fs)
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		split := isSet(fs, "shares") || isSet(fs, "threshold")
		if split && !*rotate {
			return usagef("--shares and --threshold go with --rotate: a key is split when it is made")
		}
		cl := c.client()
		defer cl.Close()
		var resp *api.UnlockKeyResponse
		var err error
		if *rotate {
			// Inconsistent --shares/--threshold are the daemon's to refuse.
			resp, err = cl.RotateUnlockKey(ctx, api.RotateUnlockKeyRequest{Shares: *shares, Threshold: *threshold})
		} else {
			resp, err = cl.UnlockKey(ctx)
		}
		if err != nil {
			return err
		}
		if resp.Threshold == 0 {
			resp.Threshold = *threshold
		}
		if *quiet {
			return printKeyQuiet(c.stdout, resp)
		}
		if format.doc() {
			return format.write(c.stdout, resp)
		}
		return printUnlockKeyResponse(c.stdout, resp, *rotate)
	}
}

// printKeyQuiet prints only the key, or only the shares, one a line.
func printKeyQuiet(w io.Writer, r *api.UnlockKeyResponse) error {
	if len(r.Shares) > 0 {
		_, err := fmt.Fprintln(w, strings.Join(r.Shares, "\n"))
		return err
	}
	_, err := fmt.Fprintln(w, r.UnlockKey)
	return err
}

// sharesWarning follows the shares of a split unlock key.
const sharesWarning = "Keep them safe: a restarted manager stays locked until it is unlocked with enough of these shares. They are never written to disk."

// printUnlockKeyResponse prints `unlock-key` and `unlock-key --rotate`.
// Shares are printed instead of the key: splitting it is for not handing
// the whole key to any one person.
func printUnlockKeyResponse(w io.Writer, r *api.UnlockKeyResponse, rotated bool) error {
	if rotated {
		fmt.Fprint(w, "Rotated the unlock key. Every manager re-wraps its keys under the new one; a manager that\n"+
			"was down meanwhile unlocks with the key it last knew, then switches to the new one.\n")
	}
	if len(r.Shares) == 0 {
		return printUnlockKey(w, r.UnlockKey)
	}
	fmt.Fprintf(w, "\nThe new key is split into %d shares; any %d of them unlock a manager, one at a time\n"+
		"('holdfast unlock' for each). Give each share to a different person:\n\n", len(r.Shares), r.Threshold)
	for i, s := range r.Shares {
		fmt.Fprintf(w, "Share %d of %d (any %d unlock): %s\n", i+1, len(r.Shares), r.Threshold, s)
	}
	_, err := fmt.Fprintf(w, "\n%s\n", sharesWarning)
	return err
}
