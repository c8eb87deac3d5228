package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/holdfast/holdfast/api"
)

// history records operations with their call and return times.
type history struct {
	start time.Time

	mu      sync.Mutex
	ops     []porcupine.Operation
	clients int
	unknown int
	dropped int
}

// unknownReturn marks an operation whose outcome is unknown until finish
// gives it a return time after the end of the history.
const unknownReturn = -1

func newHistory() *history { return &history{start: time.Now()} }

func (h *history) now() int64 { return int64(time.Since(h.start)) }

// newClient returns a fresh porcupine client id. A worker takes a new one
// after an operation whose outcome is unknown, since that operation stays
// open until the end of the history.
func (h *history) newClient() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients++
	return h.clients - 1
}

// opMeta is an operation's metadata: where it ran.
type opMeta struct {
	Node string `json:"node"`
}

func (h *history) add(client int, node string, in secretInput, call, ret int64, out secretOutput) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out.Unknown {
		ret = unknownReturn
		h.unknown++
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret, Metadata: opMeta{Node: node}})
}

func (h *history) drop() {
	h.mu.Lock()
	h.dropped++
	h.mu.Unlock()
}

// operations returns the history for the checker: unknown operations
// return after everything else.
func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var end int64
	for _, op := range h.ops {
		end = max(end, op.Call, op.Return)
	}
	out := make([]porcupine.Operation, len(h.ops))
	for i, op := range h.ops {
		if op.Return == unknownReturn {
			op.Return = end + int64(time.Hour)
		}
		out[i] = op
	}
	return out
}

// outcome turns a write's error into its recorded outcome; keep is false
// when the write certainly did nothing (refused before it reached raft).
func outcome(err error) (out secretOutput, keep bool) {
	if err == nil {
		return secretOutput{OK: true}, true
	}
	out.Err = err.Error()
	var ae *api.Error
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusNotFound, http.StatusConflict:
			out.Status = ae.Status
			return out, true
		case http.StatusBadRequest, http.StatusLocked, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusMisdirectedRequest:
			return out, false
		}
		out.Unknown = true // 503 and anything unexpected
		return out, true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return out, false // the request never left
	}
	out.Unknown = true // timeouts, broken connections
	return out, true
}

// workload runs concurrent clients against the nodes over a small set of
// names, recording every operation in h.
type workload struct {
	h       *history
	names   []string
	canary  []byte
	clients []*api.Client // one per node
	nodes   []string
	seed    uint64
	workers int
	timeout time.Duration

	stop chan struct{}
	wg   sync.WaitGroup
	ops  atomic.Int64
}

func (w *workload) start() {
	w.stop = make(chan struct{})
	for i := range w.workers {
		w.wg.Add(1)
		go w.run(i)
	}
}

// halt stops the workers after their current operation.
func (w *workload) halt() {
	close(w.stop)
	w.wg.Wait()
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// pause throttles a worker after an error, so a dead node is not hammered;
// it is a schedule, not a wait for a condition.
func (w *workload) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.stop:
	case <-t.C:
	}
}

func (w *workload) run(i int) {
	defer w.wg.Done()
	rng := rand.New(rand.NewPCG(w.seed, uint64(i)))
	client := w.h.newClient()
	node := i % len(w.clients)
	c := w.clients[node]
	for !w.stopped() {
		in := secretInput{Name: w.names[rng.IntN(len(w.names))]}
		var labels map[string]string
		switch r := rng.IntN(100); {
		case r < 35:
			in.Op = opInspect
		case r < 60:
			in.Op = opCreate
		case r < 80:
			in.Op = opRemove
		default:
			in.Op = opLabels
		}
		if in.Op == opCreate || in.Op == opLabels {
			labels = map[string]string{}
			if v := rng.IntN(5); v > 0 {
				labels["v"] = fmt.Sprint(v)
			}
			in.Labels = labelString(labels)
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		call := w.h.now()
		var out secretOutput
		keep := true
		switch in.Op {
		case opInspect:
			m, err := c.Secret(ctx, in.Name)
			switch {
			case err == nil:
				out = secretOutput{OK: true, ID: m.ID, Labels: labelString(m.Labels)}
			case apiStatus(err) == http.StatusNotFound:
				out = secretOutput{}
			default:
				keep = false // a failed read has no effect
			}
		case opCreate:
			id, err := c.CreateSecret(ctx, api.SecretCreateRequest{Name: in.Name, Data: w.canary, Labels: labels})
			out, keep = outcome(err)
			if err == nil {
				out.ID = id.ID
			}
		case opRemove:
			out, keep = outcome(c.RemoveSecret(ctx, in.Name))
		case opLabels:
			out, keep = outcome(c.SetSecretLabels(ctx, in.Name, labels))
		}
		ret := w.h.now()
		cancel()
		w.ops.Add(1)
		if !keep {
			w.h.drop()
			w.pause(20 * time.Millisecond)
			continue
		}
		w.h.add(client, w.nodes[node], in, call, ret, out)
		if out.Unknown {
			client = w.h.newClient()
			w.pause(20 * time.Millisecond)
		}
	}
}

// checkResult is the outcome of checking one history.
type checkResult struct {
	result porcupine.CheckResult
	info   porcupine.LinearizationInfo
}

func checkHistory(ops []porcupine.Operation, timeout time.Duration) checkResult {
	res, info := porcupine.CheckOperationsVerbose(secretModel, ops, timeout)
	return checkResult{res, info}
}

// lostWrites lists acknowledged creates that no later read saw although
// nothing could have removed them: a create acknowledged at C with no rm
// (acknowledged or unknown) that could come after it must exist in every
// final read. finalFrom is the call time of the first final read.
func lostWrites(ops []porcupine.Operation, finalFrom int64) []string {
	var lost []string
	for _, c := range ops {
		in, out := c.Input.(secretInput), c.Output.(secretOutput)
		if in.Op != opCreate || !out.OK {
			continue
		}
		removable := false
		for _, r := range ops {
			rin, rout := r.Input.(secretInput), r.Output.(secretOutput)
			if rin.Op == opRemove && rin.Name == in.Name && (rout.OK || rout.Unknown) && r.Return >= c.Call {
				removable = true
				break
			}
		}
		if removable {
			continue
		}
		for _, r := range ops {
			rin, rout := r.Input.(secretInput), r.Output.(secretOutput)
			if rin.Op == opInspect && rin.Name == in.Name && r.Call >= finalFrom && (!rout.OK || rout.ID != out.ID) {
				lost = append(lost, fmt.Sprintf("%s (id %s, acknowledged at %s) read as %s on %s",
					in.Name, short(out.ID), time.Duration(c.Return), describeSecretOp(rin, rout), r.Metadata.(opMeta).Node))
			}
		}
	}
	return lost
}

// failureDir returns integration/testdata/failures/<test>-<seed>[-<part>],
// created.
func failureDir(test string, seed uint64, part string) string {
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(test, "_") + fmt.Sprintf("-%d", seed)
	if part != "" {
		name += "-" + part
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "failures", name))
	if err != nil {
		dir = filepath.Join("testdata", "failures", name)
	}
	_ = os.MkdirAll(dir, 0o755)
	return dir
}

// saveFailure writes the history (JSON), porcupine's visualization when
// there is one, and every node's log into dir.
func saveFailure(dir string, ops []porcupine.Operation, res *checkResult, logs map[string]string, notes string) {
	type jsonOp struct {
		Client int          `json:"client"`
		Node   string       `json:"node"`
		Call   int64        `json:"call_ns"`
		Return int64        `json:"return_ns"`
		Input  secretInput  `json:"input"`
		Output secretOutput `json:"output"`
	}
	var js []jsonOp
	for _, op := range ops {
		js = append(js, jsonOp{op.ClientId, op.Metadata.(opMeta).Node, op.Call, op.Return, op.Input.(secretInput), op.Output.(secretOutput)})
	}
	if b, err := json.MarshalIndent(js, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644)
	}
	if res == nil {
		r := checkHistory(ops, 60*time.Second)
		res = &r
	}
	_ = porcupine.VisualizePath(secretModel, res.info, filepath.Join(dir, "linearizability.html"))
	for name, path := range logs {
		src, err := os.Open(path)
		if err != nil {
			continue
		}
		if dst, err := os.Create(filepath.Join(dir, name+".log")); err == nil {
			_, _ = io.Copy(dst, src)
			dst.Close()
		}
		src.Close()
	}
	_ = os.WriteFile(filepath.Join(dir, "notes.txt"), []byte(notes), 0o644)
}
