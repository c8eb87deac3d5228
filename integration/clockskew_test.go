package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

// TestClockSkewedManager runs one manager of three with its clock two
// hours ahead (a test build's HOLDFAST_TEST_CLOCK_OFFSET): it says so in
// status (text and JSON) and in its metric, the others see their own
// clocks right, and it refuses to sign a certificate request with the
// clock_skew code instead of issuing a certificate dated two hours ahead.
func TestClockSkewedManager(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a failpoints binary and boots a cluster")
	}
	bin, err := failpointBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 3)
	skewed := c.daemons[2]
	if err := skewed.term(); err != nil {
		t.Fatal(err)
	}
	metricsAddr := freePort(t)
	skewed.bin, skewed.env = bin, []string{"HOLDFAST_TEST_CLOCK_OFFSET=2h"}
	skewed.args = []string{"--metrics-addr", metricsAddr}
	skewed.start()
	c.waitHealthy()

	var st *api.Status
	waitFor(t, 30*time.Second, "the skewed manager to measure its clock", func() bool {
		st, err = skewed.status()
		return err == nil && st.ClockSkew != nil && st.ClockSkew.Peers == 2
	})
	if off := st.ClockSkew.OffsetSeconds; math.Abs(off-7200) > 5 || !st.ClockSkew.Refusing || st.ClockSkew.AllowedSeconds != 30 {
		t.Fatalf("skewed manager's clock skew: %+v; want about 7200 s ahead, allowed 30 s, refusing", st.ClockSkew)
	}
	for _, d := range c.daemons[:2] {
		var s *api.Status
		waitFor(t, 30*time.Second, d.name+" to measure its clock", func() bool {
			s, err = d.status()
			return err == nil && s.ClockSkew != nil && s.ClockSkew.Peers == 2
		})
		if math.Abs(s.ClockSkew.OffsetSeconds) > 5 || s.ClockSkew.Refusing {
			t.Errorf("%s (right clock, one of two peers 2h ahead): %+v; want about 0 s, not refusing", d.name, s.ClockSkew)
		}
	}

	out, errOut, code := skewed.cli("", "status")
	if code != 0 || !regexp.MustCompile(`Clock skew:\s+(2h0m|1h59m)[\d.]+m?s ahead of the managers' median clock \(2 peers; allowed 30s\): TOO FAR`).MatchString(out) {
		t.Errorf("holdfast status: exit %d, %s%s; want a clock skew line 2h ahead, too far", code, out, errOut)
	}
	out, _, code = skewed.cli("", "status", "--format", "json")
	var js map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || js["clock_skew"] == nil {
		t.Errorf("holdfast status --format json: exit %d, %s; want a clock_skew field", code, out)
	}
	if v := scrapeGauge(t, metricsAddr, "holdfast_clock_skew_seconds"); math.Abs(v-7200) > 5 {
		t.Errorf("holdfast_clock_skew_seconds = %v; want about 7200", v)
	}

	// Another manager's renewal, asked of the skewed one, is refused with
	// the code, and nothing is issued.
	other := c.daemons[0]
	st0, err := other.status()
	if err != nil {
		t.Fatal(err)
	}
	certs, err := keyfiles.New(other.dir).LoadCerts(st0.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := transport.LoadCredentials(certs.CertPEM, certs.KeyPEM, certs.RootPEM)
	if err != nil {
		t.Fatal(err)
	}
	peer := api.NewClient(transport.NewAPIClient(transport.DefaultConfig(transport.NewCredStore(creds))), "https://"+skewed.listen)
	key, err := ca.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := peer.Renew(ctx, api.RenewRequest{CSR: csr})
	if api.CodeOf(err) != api.CodeClockSkew || !strings.Contains(fmt.Sprint(err), "NTP") {
		t.Fatalf("renewal asked of the manager 2h ahead: %+v, %v; want refused with code %s, naming NTP", resp, err, api.CodeClockSkew)
	}
	logb, _ := os.ReadFile(skewed.log)
	if !strings.Contains(string(logb), "refuses to issue certificates") {
		t.Errorf("the skewed manager's log does not say it refuses to issue certificates")
	}
}

// scrapeGauge reads one unlabelled gauge from the metrics listener at
// addr.
func scrapeGauge(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in the metrics:\n%s", name, b)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
