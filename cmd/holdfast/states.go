package main

import (
	"fmt"
	"io"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

// printRemoved prints `holdfast status` of a node the cluster removed:
// who it was, what happened, and how to bring it back.
func printRemoved(w io.Writer, st *api.Status) error {
	role := st.Role
	if role != ca.RoleManager {
		role = ca.RoleWorker
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Node ID:\t%s\n", orDash(st.NodeID))
	fmt.Fprintf(tw, "Cluster ID:\t%s\n", orDash(st.ClusterID))
	fmt.Fprintf(tw, "Role:\t%s\n", orDash(string(st.Role)))
	fmt.Fprintf(tw, "State:\t%s\n", st.State)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nThis node was removed from the cluster ('holdfast node rm' on a manager): the cluster refuses its\n"+
		"certificate, and it wiped its cluster state, keys and delivered secrets. It serves nothing until it joins again.\n"+
		"To bring it back, get a join token on a manager ('holdfast join-token %s') and run here:\n"+
		"  holdfast join --token TOKEN HOST:PORT\n", role)
	return err
}

// catchingUpHint says how far a manager in state catching-up is, and
// that it needs no action; "" in any other state.
func catchingUpHint(st *api.Status) string {
	if st.State != api.StateCatchingUp {
		return ""
	}
	c := st.CatchingUp
	if c == nil || c.TargetIndex == 0 {
		return "\nThis manager is catching up with the cluster: it has not yet learnt the leader's commit index\n" +
			"(no leader reachable yet). It serves reads once it has applied it; check the other managers if this lasts.\n"
	}
	return fmt.Sprintf("\nThis manager is catching up with the cluster: applied index %d of %d (what the leader had\n"+
		"committed when it started). It serves reads once caught up, usually within seconds; no action is needed.\n",
		c.AppliedIndex, c.TargetIndex)
}
