package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/holdfast/holdfast/api"
)

func setupKeysLs(c *cli, fs *flag.FlagSet) action {
	return listCommand(c, fs, "print only the key IDs", (*api.Client).Keys,
		func(k api.KeyInfo) string { return k.KeyID }, nil, printKeys)
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
