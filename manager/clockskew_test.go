package manager

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

func TestMedianSkew(t *testing.T) {
	h := time.Hour
	for _, tc := range []struct {
		name  string
		peers []time.Duration
		want  time.Duration
		ok    bool
	}{
		{"no peer: unknown", nil, 0, false},
		{"one of three managers ahead, seen by itself", []time.Duration{2 * h, 2 * h}, 2 * h, true},
		{"one of three managers ahead, seen by another", []time.Duration{0, -2 * h}, 0, true},
		{"one of five behind, seen by itself", []time.Duration{90 * time.Minute, 90 * time.Minute, 90 * time.Minute, 90 * time.Minute}, 90 * time.Minute, true},
		{"one of five behind, seen by another", []time.Duration{time.Second, -time.Second, 0, -90 * time.Minute}, 0, true},
		{"two managers disagree: nobody is blamed", []time.Duration{2 * h}, 0, true},
		{"two managers disagree, the other way", []time.Duration{-2 * h}, 0, true},
		{"even count: the middle value nearer zero", []time.Duration{3 * time.Second, 5 * time.Second, 7 * time.Second}, 3 * time.Second, true},
		{"odd count with jitter", []time.Duration{40 * time.Second, 41 * time.Second}, 40 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := medianSkew(tc.peers)
			if got != tc.want || ok != tc.ok {
				t.Errorf("medianSkew(%v) = %v, %v; want %v, %v", tc.peers, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSkewSampleOf(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name                 string
		sent, received, peer time.Time
		want                 time.Duration
		ok                   bool
	}{
		{"peer read its clock at our midpoint", base, base.Add(100 * time.Millisecond), base.Add(50 * time.Millisecond), 0, true},
		{"we are 90 minutes ahead", base, base.Add(10 * time.Millisecond), base.Add(5*time.Millisecond - 90*time.Minute), 90 * time.Minute, true},
		{"we are behind", base, base.Add(10 * time.Millisecond), base.Add(5*time.Millisecond + time.Minute), -time.Minute, true},
		{"too slow an exchange says nothing", base, base.Add(3 * time.Second), base, 0, false},
		{"no reading from an older build", base, base.Add(time.Millisecond), time.Time{}, 0, false},
		{"received before sent", base, base.Add(-time.Millisecond), base, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := skewSampleOf(tc.sent, tc.received, tc.peer)
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSkewRefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		offset time.Duration
		known  bool
		refuse bool
	}{
		{"within the allowed skew", 29 * time.Second, true, false},
		{"at the allowed skew", -30 * time.Second, true, false},
		{"ahead beyond it", 31 * time.Second, true, true},
		{"hours behind", -3 * time.Hour, true, true},
		{"unknown: no other manager answered", 3 * time.Hour, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := skewRefusal(tc.offset, tc.known, MaxClockSkew)
			if (err != nil) != tc.refuse {
				t.Fatalf("skewRefusal(%v, %v) = %v; want refused %v", tc.offset, tc.known, err, tc.refuse)
			}
			if err == nil {
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != api.CodeClockSkew || ae.Code.Temporary() {
				t.Errorf("refusal %v: want code %s, not temporary", err, api.CodeClockSkew)
			}
		})
	}
}

// TestClockSkewFromSamples: the estimate is the median of the recorded
// samples, forgets removed managers, and refuses to issue beyond the
// allowed skew.
func TestClockSkewFromSamples(t *testing.T) {
	c := newClockSkew(MaxClockSkew, slog.New(slog.DiscardHandler))
	if err := c.checkIssue(); err != nil || c.status() != nil {
		t.Fatalf("with no sample: checkIssue %v, status %+v; want nil, nil", err, c.status())
	}
	at := time.Now()
	ahead := at.Add(time.Millisecond).Add(-2 * time.Hour) // the peers' clocks: we are 2h ahead
	c.record("m2", at, at.Add(2*time.Millisecond), ahead)
	c.record("m3", at, at.Add(2*time.Millisecond), ahead)
	off, peers, ok := c.estimate()
	if !ok || peers != 2 || off != 2*time.Hour {
		t.Fatalf("estimate = %v, %d peers, %v; want 2h, 2, true", off, peers, ok)
	}
	if err := c.checkIssue(); api.CodeOf(err) != api.CodeClockSkew {
		t.Fatalf("checkIssue 2h ahead = %v; want code %s", err, api.CodeClockSkew)
	}
	if st := c.status(); st == nil || !st.Refusing || st.Peers != 2 || st.OffsetSeconds != 7200 || st.AllowedSeconds != 30 {
		t.Fatalf("status = %+v; want 7200 s, 2 peers, allowed 30, refusing", st)
	}
	c.keepOnly([]string{"m1", "m2"})
	if _, peers, _ := c.estimate(); peers != 1 {
		t.Fatalf("after m3's removal, %d samples; want 1", peers)
	}
	// Two managers that disagree: neither can tell which is wrong.
	if err := c.checkIssue(); err != nil {
		t.Fatalf("one peer disagreeing: checkIssue %v; want nil", err)
	}
}

// TestClockJumpRefusesUntilMeasured: a clock that moves beyond the
// allowed skew after the last measurement refuses to issue at once, not
// only after the next probe; a measurement at the new clock judges it
// again.
func TestClockJumpRefusesUntilMeasured(t *testing.T) {
	var off atomic.Int64
	c := newClockSkew(MaxClockSkew, slog.New(slog.DiscardHandler))
	c.clock = func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	measure := func() {
		sent := c.clock()
		peer := time.Now() // the peers' clocks are right
		c.record("m2", sent, c.clock(), peer)
		c.record("m3", sent, c.clock(), peer)
	}
	measure()
	if err := c.checkIssue(); err != nil {
		t.Fatalf("measured, clock right: %v", err)
	}
	off.Store(int64(3 * time.Minute))
	err := c.checkIssue()
	if api.CodeOf(err) != api.CodeClockSkew || !strings.Contains(err.Error(), "moved 3m0s ahead") {
		t.Fatalf("clock jumped 3m ahead, not yet measured: %v; want clock_skew, moved 3m0s ahead", err)
	}
	if st := c.status(); st == nil || !st.Refusing {
		t.Fatalf("status %+v after the jump; want refusing, as checkIssue", st)
	}
	measure()
	if err := c.checkIssue(); api.CodeOf(err) != api.CodeClockSkew || strings.Contains(err.Error(), "moved") {
		t.Fatalf("measured 3m ahead: %v; want the estimate's clock_skew", err)
	}
	off.Store(0)
	if err := c.checkIssue(); api.CodeOf(err) != api.CodeClockSkew || !strings.Contains(err.Error(), "moved 3m0s back") {
		t.Fatalf("clock set right again, not yet measured: %v; want clock_skew, moved back", err)
	}
	measure()
	if err := c.checkIssue(); err != nil {
		t.Fatalf("measured right again: %v", err)
	}
	// A small step within the allowed skew is no jump.
	off.Store(int64(5 * time.Second))
	if err := c.checkIssue(); err != nil {
		t.Fatalf("a 5 s step: %v", err)
	}
}

// TestKeyRotatorWaitsForARightClock: a leader whose clock is refused
// (off the managers', or stepped since measured) does not rotate keys.
func TestKeyRotatorWaitsForARightClock(t *testing.T) {
	var clockErr error
	k := &keyRotator{leading: func() bool { return true }, clockOK: func() error { return clockErr }}
	if !k.mayRotate() {
		t.Fatal("a leader with a right clock does not rotate")
	}
	clockErr = api.Errorf(api.CodeClockSkew, "off")
	if k.mayRotate() {
		t.Fatal("a leader whose clock is refused rotates")
	}
	k.leading = func() bool { return false }
	clockErr = nil
	if k.mayRotate() {
		t.Fatal("a follower rotates")
	}
}
