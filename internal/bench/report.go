package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Report is what `holdfast bench --format json` prints.
type Report struct {
	Time                 string      `json:"time"`
	Quick                bool        `json:"quick"`
	Machine              Machine     `json:"machine"`
	Cluster              ClusterInfo `json:"cluster"`
	SequentialWrite      Sequential  `json:"sequential_write"`
	ConcurrentWrites     Concurrent  `json:"concurrent_writes"`
	Failover             Trials      `json:"failover"`
	UnlockToFirstWrite   Trials      `json:"unlock_to_first_write"`
	SealedVsPlainLog     LogFigures  `json:"sealed_vs_plain_log"`
	ManagerMemory        Memory      `json:"manager_memory"`
	DataPlaneKeyRotation Trials      `json:"data_plane_key_rotation"`
	// Workers holds the figures of a run with simulated workers, which
	// measures only those.
	Workers *WorkerFigures `json:"workers,omitempty"`
	// State holds the figures of a run with a large state, which
	// measures only those.
	State *StateFigures `json:"state,omitempty"`
}

type Machine struct {
	CPUModel   string `json:"cpu_model"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

type ClusterInfo struct {
	Managers int  `json:"managers"`
	Autolock bool `json:"autolock"`
	// Secrets is how many secrets bench created in all.
	Secrets int64 `json:"secrets"`
}

type Sequential struct {
	Writes      int     `json:"writes"`
	SecretBytes int     `json:"secret_bytes"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	Goal        string  `json:"goal"`
	Met         bool    `json:"met"`
}

type Concurrent struct {
	Writers      int     `json:"writers"`
	Writes       int64   `json:"writes"`
	SecretBytes  int     `json:"secret_bytes"`
	Seconds      float64 `json:"seconds"`
	WritesPerSec float64 `json:"writes_per_sec"`
	Goal         string  `json:"goal"`
	Met          bool    `json:"met"`
}

type Trials struct {
	Trials   int       `json:"trials"`
	P50Ms    float64   `json:"p50_ms"`
	P99Ms    float64   `json:"p99_ms"`
	TrialsMs []float64 `json:"trials_ms"`
	Goal     string    `json:"goal"`
	Met      bool      `json:"met"`
}

type LogFigures struct {
	Rounds         int       `json:"rounds"`
	BatchEntries   int       `json:"batch_entries"`
	EntryBytes     int       `json:"entry_bytes"`
	SealedMBPerSec float64   `json:"sealed_mb_per_sec"`
	PlainMBPerSec  float64   `json:"plain_mb_per_sec"`
	SealedRounds   []float64 `json:"sealed_rounds_mb_per_sec"`
	PlainRounds    []float64 `json:"plain_rounds_mb_per_sec"`
	Ratio          float64   `json:"ratio"`
	Goal           string    `json:"goal"`
	Met            bool      `json:"met"`
}

type Memory struct {
	Secrets     int       `json:"secrets"`
	SecretBytes int       `json:"secret_bytes"`
	MaxRSSMiB   float64   `json:"max_rss_mib"`
	RSSMiB      []float64 `json:"rss_mib"`
	Goal        string    `json:"goal"`
	Met         bool      `json:"met"`
}

// WriteTable prints the figures as a table, each against its goal, and
// a line about the machine and the run.
func WriteTable(w io.Writer, r *Report) error {
	if r.Workers != nil {
		if err := writeWorkerTable(w, r); err != nil {
			return err
		}
		return writeMachine(w, r)
	}
	if r.State != nil {
		if err := writeStateTable(w, r); err != nil {
			return err
		}
		return writeMachine(w, r)
	}
	seq, conc, fo, un, lg, mem, kr := r.SequentialWrite, r.ConcurrentWrites, r.Failover, r.UnlockToFirstWrite, r.SealedVsPlainLog, r.ManagerMemory, r.DataPlaneKeyRotation
	secs := func(msv float64) string { return fmt.Sprintf("%.3f s", msv/1000) }
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprint(tw, "FIGURE\tVALUE\tGOAL\tMET\n")
	rows := [][4]string{
		{fmt.Sprintf("sequential write p50 (1 KiB, %s writes)", thousands(int64(seq.Writes))), fmt.Sprintf("%.3f ms", seq.P50Ms), "≤ 1.0 ms", yesNo(seq.Met)},
		{"sequential write p99", fmt.Sprintf("%.3f ms", seq.P99Ms), "-", "-"},
		{fmt.Sprintf("%d concurrent writers (%s writes)", conc.Writers, thousands(conc.Writes)), fmt.Sprintf("%s writes/s", thousands(int64(conc.WritesPerSec+0.5))), "≥ 8,000 writes/s", yesNo(conc.Met)},
		{fmt.Sprintf("failover p50 (kill -9 of the leader, %d trials)", fo.Trials), secs(fo.P50Ms), "≤ 1.0 s", yesNo(fo.P50Ms <= ms(goalFailoverP50))},
		{"failover p99", secs(fo.P99Ms), "≤ 2.0 s", yesNo(fo.P99Ms <= ms(goalFailoverP99))},
		{fmt.Sprintf("unlock to first write p50 (%d trials)", un.Trials), secs(un.P50Ms), "≤ 0.5 s", yesNo(un.Met)},
		{"unlock to first write p99", secs(un.P99Ms), "-", "-"},
		{"sealed log store / plain raft-boltdb", fmt.Sprintf("%.3f (%.1f / %.1f MB/s)", lg.Ratio, lg.SealedMBPerSec, lg.PlainMBPerSec), "≥ 0.95", yesNo(lg.Met)},
		{fmt.Sprintf("manager memory (%s secrets of 1 KiB)", thousands(int64(mem.Secrets))), fmt.Sprintf("%.1f MiB max RSS", mem.MaxRSSMiB), "≤ 150 MiB", yesNo(mem.Met)},
		{fmt.Sprintf("data-plane key rotation to all %d managers p50 (%d rotations)", r.Cluster.Managers, kr.Trials), secs(kr.P50Ms), "-", "-"},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row[0], row[1], row[2], row[3])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeMachine(w, r)
}

// writeMachine prints the line about the machine and the run.
func writeMachine(w io.Writer, r *Report) error {
	m := r.Machine
	quick := ""
	if r.Quick {
		quick = " (--quick)"
	}
	_, err := fmt.Fprintf(w, "\n%d managers on 127.0.0.1, autolock on%s; %s, %d CPUs, GOMAXPROCS %d, %s %s/%s; %s\n",
		r.Cluster.Managers, quick, m.CPUModel, m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.OS, m.Arch, r.Time)
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
