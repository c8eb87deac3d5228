package ca

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// update rewrites the files in testdata (decisions.txt, roles.golden)
// with the results.
var update = flag.Bool("update", false, "rewrite the files in testdata with the results")

// TestDecisionsData runs the cases of testdata/decisions.txt, in the style
// of etcd-io/raft's data-driven tests: a command, its arguments, and the
// result it must print.
func TestDecisionsData(t *testing.T) {
	const path = "testdata/decisions.txt"
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		cmd := sc.Text()
		if cmd == "" || strings.HasPrefix(cmd, "#") {
			out.WriteString(cmd + "\n")
			continue
		}
		if !sc.Scan() || sc.Text() != "----" {
			t.Fatalf("%s:%d: want a line ---- after %q", path, line, cmd)
		}
		line++
		var want []string
		for sc.Scan() {
			line++
			if sc.Text() == "" {
				break
			}
			want = append(want, sc.Text())
		}
		got, err := runDecision(cmd)
		if err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		if !*update && got != strings.Join(want, "\n") {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", path, line, cmd, got, strings.Join(want, "\n"))
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", cmd, got)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, []byte(strings.TrimSuffix(out.String(), "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runDecision runs one command line and returns what it prints.
func runDecision(line string) (string, error) {
	fields := strings.Fields(line)
	args := map[string]string{}
	for _, kv := range fields[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", fmt.Errorf("argument %q is not key=value", kv)
		}
		args[k] = v
	}
	flagOf := func(k string) bool { b, _ := strconv.ParseBool(args[k]); return b }
	switch fields[0] {
	case "node-step":
		return NextNodeStep(NodeCA{FromIssuer: flagOf("from-issuer"), TrustCurrent: flagOf("trust-current"), RotationID: args["rotation"], Recorded: flagOf("recorded")}).String(), nil
	case "leader-step":
		n, err := strconv.Atoi(args["waiting"])
		if err != nil {
			return "", err
		}
		return NextLeaderStep(flagOf("in-progress"), n).String(), nil
	case "renew-in":
		life, err := time.ParseDuration(args["life"])
		if err != nil {
			return "", err
		}
		now, err := time.ParseDuration(args["now"])
		if err != nil {
			return "", err
		}
		frac, err := strconv.ParseFloat(args["frac"], 64)
		if err != nil {
			return "", err
		}
		nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		return RenewIn(nb, nb.Add(life), nb.Add(now), func() float64 { return frac }).String(), nil
	case "role-step":
		return NextRoleStep(RoleTarget{Role: Role(args["want"]), Removed: flagOf("removed")}, Role(args["have"]), flagOf("missing-from-raft")).String(), nil
	}
	return "", fmt.Errorf("unknown command %q", fields[0])
}
