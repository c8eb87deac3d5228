package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/holdfast/holdfast/api"
)

func setupKeysLs(c *cli, fs *flag.FlagSet) action {
	quiet := fs.Bool("q", false, "print only the key IDs")
	format := formatFlag(fs)
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		keys, err := cl.Keys(ctx)
		if err != nil {
			return err
		}
		if keys == nil {
			keys = []api.KeyInfo{}
		}
		return printListing(c, *quiet, format, keys, func(k api.KeyInfo) string { return k.KeyID }, printKeys)
	}
}

// printKeys prints `keys ls`: metadata only, there is no material to print.
func printKeys(w io.Writer, keys []api.KeyInfo) error {
	tw := newTable(w)
	fmt.Fprint(tw, "SUBSYSTEM\tKEY ID\tLAMPORT\tCREATED\tPRIMARY\n")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", k.Subsystem, k.KeyID, k.Lamport, fmtTime(k.CreatedAt), yesNo(k.Primary))
	}
	return tw.Flush()
}
