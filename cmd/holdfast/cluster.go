package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	hfversion "github.com/holdfast/holdfast/internal/version"
)

func setupInit(c *cli, fs *flag.FlagSet) action {
	autolock := fs.Bool("autolock", false, "lock managers' keys at rest: a restarted manager needs the unlock key")
	var certExpiry, keyRotation durationFlag
	fs.Var(&certExpiry, "cert-expiry", "validity of node certificates (`DURATION`, e.g. 2160h)")
	fs.Var(&keyRotation, "key-rotation", "how often data-plane keys rotate (`DURATION`)")
	caCert := fs.String("ca-cert", "", "use the root CA certificate in `FILE` (PEM) instead of creating one; needs --ca-key")
	caKey := fs.String("ca-key", "", "the private key of --ca-cert, in `FILE` (PEM)")
	forceNew := fs.Bool("force-new-cluster", false, "on a manager that lost quorum: keep its state and become a one-manager cluster")
	quiet := fs.Bool("q", false, "print only the cluster ID")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		if (*caCert == "") != (*caKey == "") {
			return usagef("--ca-cert and --ca-key go together")
		}
		req := api.InitRequest{
			Autolock:        *autolock,
			CertExpiry:      certExpiry.text,
			KeyRotation:     keyRotation.text,
			ForceNewCluster: *forceNew,
		}
		if *caCert != "" {
			cert, err := readFile("--ca-cert", *caCert)
			if err != nil {
				return err
			}
			key, err := readFile("--ca-key", *caKey)
			if err != nil {
				return err
			}
			req.CACertPEM, req.CAKeyPEM = string(cert), string(key)
		}
		cl := c.client()
		defer cl.Close()
		resp, err := cl.Init(ctx, req)
		if err != nil {
			return err
		}
		if *quiet {
			_, err = fmt.Fprintln(c.stdout, resp.ClusterID)
			return err
		}
		if *forceNew {
			fmt.Fprintf(c.stdout, "Cluster %s now has this node (%s) as its only manager, with all its state.\n", resp.ClusterID, resp.NodeID)
			fmt.Fprintf(c.stdout, "Remove the lost managers with 'holdfast node rm --force ID', then add managers:\n    %s\n", joinCommand(resp.ManagerToken, resp.Addr))
			return nil
		}
		return printInit(c.stdout, resp)
	}
}

// readFile reads a file named by a flag, with an error that says which.
func readFile(flagName, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the %s file: %w; check the path and its permissions", flagName, err)
	}
	return b, nil
}

func setupJoin(c *cli, fs *flag.FlagSet) action {
	token := fs.String("token", "", "the join `TOKEN` ('holdfast join-token worker|manager' on a manager shows it)")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "HOST:PORT"); err != nil {
			return err
		}
		if *token == "" {
			return usagef("missing --token TOKEN; run 'holdfast join-token worker' or 'holdfast join-token manager' on a manager to get one")
		}
		if _, _, err := net.SplitHostPort(args[0]); err != nil {
			return usagef("bad manager address %q: want HOST:PORT", args[0])
		}
		cl := c.client()
		defer cl.Close()
		resp, err := cl.Join(ctx, api.JoinRequest{Token: *token, Addr: args[0]})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "This node joined cluster %s as a %s (node ID %s).\n", resp.ClusterID, resp.Role, resp.NodeID)
		return err
	}
}

func setupLeave(c *cli, fs *flag.FlagSet) action {
	force := fs.Bool("force", false, "leave even if this is the last manager or leaving breaks quorum")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		if err := cl.Leave(ctx, api.LeaveRequest{Force: *force}); err != nil {
			return err
		}
		_, err := fmt.Fprintln(c.stdout, "This node left the cluster.")
		return err
	}
}

func setupStatus(c *cli, fs *flag.FlagSet) action {
	format := outputFlag(fs)
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		if st.Managers == nil {
			st.Managers = []api.ManagerStatus{}
		}
		if format.doc() {
			return format.write(c.stdout, st)
		}
		return printStatus(c.stdout, st)
	}
}

func setupUpdate(c *cli, fs *flag.FlagSet) action {
	autolock := fs.Bool("autolock", false, "turn autolock on or off (--autolock=true|false)")
	var certExpiry, keyRotation durationFlag
	fs.Var(&certExpiry, "cert-expiry", "validity of node certificates (`DURATION`, e.g. 2160h)")
	fs.Var(&keyRotation, "key-rotation", "how often data-plane keys rotate (`DURATION`)")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		req := api.UpdateRequest{CertExpiry: certExpiry.ptr(), KeyRotation: keyRotation.ptr()}
		if isSet(fs, "autolock") {
			req.Autolock = autolock
		}
		if req.Autolock == nil && req.CertExpiry == nil && req.KeyRotation == nil {
			return usagef("nothing to update: give --autolock, --cert-expiry or --key-rotation")
		}
		cl := c.client()
		defer cl.Close()
		resp, err := cl.Update(ctx, req)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, "Cluster settings updated.")
		switch {
		case resp.UnlockKey != "":
			return printUnlockKey(c.stdout, resp.UnlockKey)
		case req.Autolock != nil && !*req.Autolock:
			_, err = fmt.Fprint(c.stdout, "Autolock is off: a restarted manager no longer needs the unlock key, and\n"+
				"the managers' keys are now stored unwrapped on disk (mode 0600), readable by anyone who can read the data dir.\n")
		}
		return err
	}
}

func setupJoinToken(c *cli, fs *flag.FlagSet) action {
	rotate := fs.Bool("rotate", false, "replace the token with a new one; the old one stops working")
	quiet := fs.Bool("q", false, "print only the token")
	format := outputFlag(fs)
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "worker|manager"); err != nil {
			return err
		}
		role := ca.Role(args[0])
		if !role.Valid() {
			return usagef("unknown role %q: want worker or manager", role)
		}
		cl := c.client()
		defer cl.Close()
		var tok *api.JoinToken
		var err error
		if *rotate {
			tok, err = cl.RotateJoinToken(ctx, role)
		} else {
			tok, err = cl.JoinToken(ctx, role)
		}
		if err != nil {
			return err
		}
		switch {
		case *quiet:
			_, err = fmt.Fprintln(c.stdout, tok.Token)
			return err
		case format.doc():
			return format.write(c.stdout, tok)
		}
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		return printJoinToken(c.stdout, tok, st.Addr, *rotate)
	}
}

func setupVersion(c *cli, fs *flag.FlagSet) action {
	format := outputFlag(fs)
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		v := versionInfo{Version: hfversion.String(), Commit: buildCommit(), GoVersion: runtime.Version(), Level: fsm.CurrentLevel}
		for _, cv := range fsm.Commands(fsm.CurrentLevel) {
			v.Commands = append(v.Commands, cv.String())
		}
		if format.doc() {
			return format.write(c.stdout, v)
		}
		return printVersion(c.stdout, v)
	}
}

// buildCommit is the VCS revision the binary was built from ("-dirty" when
// the tree had changes); empty when unknown.
func buildCommit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" && modified == "true" {
		rev += "-dirty"
	}
	return rev
}
