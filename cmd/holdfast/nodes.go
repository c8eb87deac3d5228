package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/holdfast/holdfast/api"
)

func setupNodeLs(c *cli, fs *flag.FlagSet) action {
	return listCommand(c, fs, "print only the node IDs", (*api.Client).Nodes,
		func(n api.Node) string { return n.ID }, nil, printNodes, nodeFilters...)
}

func setupNodeInspect(c *cli, fs *flag.FlagSet) action {
	format := outputFlag(fs)
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "ID|self"); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		n, err := cl.Node(ctx, args[0])
		if err != nil {
			return err
		}
		if format.doc() {
			return format.write(c.stdout, n)
		}
		return printNode(c.stdout, n)
	}
}

func setupNodePromote(c *cli, fs *flag.FlagSet) action {
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "ID"); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		if err := cl.Promote(ctx, args[0]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.stdout, "Node %s promoted to manager.\n", args[0])
		return err
	}
}

func setupNodeDemote(c *cli, fs *flag.FlagSet) action {
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "ID"); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		if err := cl.Demote(ctx, args[0]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.stdout, "Node %s demoted to worker.\n", args[0])
		return err
	}
}

func setupNodeRm(c *cli, fs *flag.FlagSet) action {
	force := fs.Bool("force", false, "remove a manager without demoting it first")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "ID"); err != nil {
			return err
		}
		cl := c.client()
		defer cl.Close()
		if err := cl.RemoveNode(ctx, args[0], *force); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.stdout, "Node %s removed.\n", args[0])
		return err
	}
}
