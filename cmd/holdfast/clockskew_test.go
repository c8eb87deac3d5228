package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

func TestStatusShowsClockSkew(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew *api.ClockSkew
		want []string // lines that must be in the output
		not  string
	}{
		{"within", &api.ClockSkew{OffsetSeconds: -1.5, Peers: 2, AllowedSeconds: 30}, []string{"Clock skew:  1.5s behind the managers' median clock (2 peers; allowed 30s)"}, "TOO FAR"},
		{"beyond", &api.ClockSkew{OffsetSeconds: 5400, Peers: 4, AllowedSeconds: 30, Refusing: true},
			[]string{"Clock skew:  1h30m0s ahead of the managers' median clock (4 peers; allowed 30s): TOO FAR, refusing to issue certificates", "it refuses to issue certificates.", "NTP"}, ""},
		{"unknown", nil, nil, "Clock skew"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			st := &api.Status{NodeID: "n1", ClusterID: "c1", Role: ca.RoleManager, State: api.StateReady, ClockSkew: tc.skew}
			if err := printStatus(&b, st); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("got:\n%s\nwant a line with %q", b.String(), w)
				}
			}
			if tc.not != "" && strings.Contains(b.String(), tc.not) {
				t.Errorf("got:\n%s\nwant no %q", b.String(), tc.not)
			}
		})
	}
}
