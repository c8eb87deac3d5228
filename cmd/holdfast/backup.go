package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/backup"
	"github.com/holdfast/holdfast/datadir"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/atomicfile"
	"github.com/holdfast/holdfast/internal/dirsync"
)

// maxPassphraseRead bounds a passphrase file.
const maxPassphraseRead = 64 << 10

// readPassphraseFile reads a passphrase from path, without its trailing
// line break.
func readPassphraseFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the --passphrase-file %s: %v", path, pathErrCause(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPassphraseRead+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("cannot read the --passphrase-file %s: %v", path, pathErrCause(err))
	case len(b) > maxPassphraseRead:
		return nil, fmt.Errorf("the --passphrase-file %s is too large for a passphrase", path)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("the --passphrase-file %s is empty", path)
	}
	return b, nil
}

func setupSnapshotSave(c *cli, fs *flag.FlagSet) action {
	passFile := fs.String("passphrase-file", "", "seal the backup with the passphrase in `FILE` (Argon2id); needed when autolock is off")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "FILE"); err != nil {
			return err
		}
		if isSet(fs, "passphrase-file") && *passFile == "" {
			return usagef("--passphrase-file needs a file")
		}
		var req api.SnapshotRequest
		if *passFile != "" {
			p, err := readPassphraseFile(*passFile)
			if err != nil {
				return err
			}
			req.Passphrase = string(p)
			clear(p)
		}
		path := args[0]
		cl := c.client()
		defer cl.Close()
		prog := newProgress(c.stderr)
		n, err := writeAtomic(path, func(w io.Writer) error {
			pw := &byteProgress{p: prog, what: "saving backup"}
			_, err := cl.SaveSnapshot(ctx, req, io.MultiWriter(w, pw), func(size int64) { pw.total = size })
			return err
		})
		prog.done()
		if err != nil {
			return err
		}
		h, err := datadir.ReadBackupHeader(path)
		if err != nil {
			return fmt.Errorf("the saved backup %s: %w", path, err)
		}
		sealed := "the cluster's current unlock key: keep that key (it restores this backup even after a rotation)"
		if h.KDF == backup.KDFArgon2id {
			sealed = "the passphrase: keep it, nothing else restores this backup"
		}
		_, err = fmt.Fprintf(c.stdout, "Backup of cluster %s saved to %s (%d bytes, state at raft index %d).\nIt is sealed under a key derived from %s.\n", h.Meta.ClusterID, path, n, h.Meta.Index, sealed)
		return err
	}
}

// writeAtomic writes path through atomicfile with mode 0600: fsync,
// rename, then a best-effort fsync of the directory. On failure nothing
// is left behind.
func writeAtomic(path string, write func(w io.Writer) error) (int64, error) {
	var cw *countWriter
	err := atomicfile.Write(path, 0o600, atomicfile.Options{NoDirSync: true}, func(w io.Writer) error {
		cw = &countWriter{w: w}
		return write(cw)
	})
	if err != nil && cw == nil {
		// The temporary file could not be made: say so plainly.
		return 0, fmt.Errorf("cannot write %s: %v", path, pathErrCause(err))
	}
	if err != nil {
		return 0, err
	}
	// The backup is whole and renamed; a directory that cannot be synced
	// does not make it an error.
	_ = dirsync.Sync(filepath.Dir(path))
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// byteProgress reports a byte count against a total, every 10%.
type byteProgress struct {
	p     *progress
	what  string
	done  int64
	total int64
	last  int64 // the last tenth reported, plus one
}

func (b *byteProgress) Write(p []byte) (int, error) {
	b.add(int64(len(p)))
	return len(p), nil
}

func (b *byteProgress) add(n int64) {
	b.done += n
	b.report(b.done, b.total)
}

func (b *byteProgress) report(done, total int64) {
	b.done, b.total = done, total
	if !b.p.tty {
		// Off a terminal, one line naming the step, not a count of bytes.
		if b.last == 0 {
			b.last = 1
			b.p.step("%s", b.what)
		}
		return
	}
	if total <= 0 {
		return
	}
	tenth := done * 10 / total
	if tenth+1 <= b.last {
		return
	}
	b.last = tenth + 1
	b.p.step("%s: %s of %s (%d%%)", b.what, humanBytes(done), humanBytes(total), tenth*10)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func setupSnapshotRestore(c *cli, fs *flag.FlagSet) action {
	keyFile := fs.String("key-file", "", "read the unlock key from `FILE` instead of stdin (a backup sealed under the unlock key)")
	passFile := fs.String("passphrase-file", "", "read the passphrase from `FILE` (a backup sealed with a passphrase)")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, "FILE"); err != nil {
			return err
		}
		if c.dataDirFlag == "" && c.getenv("HOLDFAST_DATA_DIR") == "" {
			return usagef("snapshot restore needs --data-dir DIR: the new, empty data dir to build")
		}
		if isSet(fs, "key-file") && *keyFile == "" || isSet(fs, "passphrase-file") && *passFile == "" {
			return usagef("--key-file and --passphrase-file need a file")
		}
		path, dir := args[0], c.dataDir()
		h, err := datadir.ReadBackupHeader(path)
		if err != nil {
			return fmt.Errorf("cannot read the backup %s: %w", path, err)
		}
		cfg := datadir.RestoreConfig{DataDir: dir, Backup: path}
		switch h.KDF {
		case backup.KDFArgon2id:
			if *passFile == "" {
				return fmt.Errorf("%s is sealed with a passphrase: give it with --passphrase-file FILE", path)
			}
			if cfg.Passphrase, err = readPassphraseFile(*passFile); err != nil {
				return err
			}
			defer clear(cfg.Passphrase)
		default:
			if *passFile != "" {
				return fmt.Errorf("%s is sealed under the cluster's unlock key, not a passphrase: give the key on stdin or with --key-file FILE", path)
			}
			if cfg.UnlockKey, err = c.readUnlockKey(ctx, *keyFile); err != nil {
				return err
			}
		}
		prog := newProgress(c.stderr)
		bp := &byteProgress{p: prog, what: "verifying backup"}
		cfg.Progress = bp.report
		res, err := datadir.RestoreBackup(ctx, cfg)
		prog.done()
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "Restored cluster %s into %s as node %s (state at raft index %d: %d nodes, %d secrets).\n",
			res.ClusterID, dir, res.NodeID, res.Index, res.Nodes, res.Secrets)
		fmt.Fprintf(c.stdout, "Start it with 'holdfast daemon --data-dir %s': it becomes the only manager of the cluster.\n", shellQuote(dir))
		if res.Autolock {
			fmt.Fprintln(c.stdout, "Autolock is on: the node starts locked; unlock it with the cluster's unlock key ('holdfast unlock').")
		}
		_, err = fmt.Fprintln(c.stdout, "Join other managers with the cluster's manager token, and remove the old ones with 'holdfast node rm --force ID'.")
		return err
	}
}

// offlineKey returns how rafttool asks for the unlock key: only when the
// node's keys are wrapped.
func (c *cli) offlineKey(ctx context.Context, keyFile string) func() (string, error) {
	return func() (string, error) { return c.readUnlockKey(ctx, keyFile) }
}

func setupRafttoolDump(c *cli, fs *flag.FlagSet) action {
	keyFile := fs.String("key-file", "", "read the unlock key from `FILE` instead of stdin (autolocked nodes)")
	reveal := fs.Bool("reveal", false, "show secret data, the CA key, tokens and the unlock key instead of "+fsm.Redacted)
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		o, err := datadir.OpenOffline(c.dataDir(), c.offlineKey(ctx, *keyFile))
		if err != nil {
			return err
		}
		defer o.Close()
		return dumpLog(c.stdout, o, *reveal)
	}
}

// dumpLine is one line of rafttool dump: an entry or a snapshot.
type dumpLine struct {
	Kind          string          `json:"kind"` // "entry" or "snapshot"
	Index         uint64          `json:"index"`
	Term          uint64          `json:"term"`
	Type          string          `json:"type,omitempty"`    // raft's entry type
	Command       string          `json:"command,omitempty"` // fsm command type name
	Body          json.RawMessage `json:"body,omitempty"`
	DataBytes     int             `json:"data_bytes,omitempty"`
	Error         string          `json:"error,omitempty"`
	AppendedAt    *time.Time      `json:"appended_at,omitempty"`
	ID            string          `json:"id,omitempty"`
	Configuration []configServer  `json:"configuration,omitempty"`
	State         json.RawMessage `json:"state,omitempty"`
}

type configServer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
}

func dumpLog(w io.Writer, o *datadir.OfflineLog, reveal bool) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	err := o.Entries(func(l *raft.Log) error {
		line := dumpLine{Kind: "entry", Index: l.Index, Term: l.Term, Type: l.Type.String()}
		if !l.AppendedAt.IsZero() {
			t := l.AppendedAt.UTC()
			line.AppendedAt = &t
		}
		if l.Type == raft.LogCommand {
			name, body, err := fsm.Describe(l.Data)
			if err != nil {
				line.Error, line.DataBytes = err.Error(), len(l.Data)
			} else {
				line.Command, line.Body = name, body
				if !reveal {
					if line.Body, err = fsm.RedactJSON(body); err != nil {
						return err
					}
				}
			}
		} else if len(l.Data) > 0 {
			line.DataBytes = len(l.Data)
		}
		return enc.Encode(line)
	})
	if err != nil {
		return err
	}
	return o.Snapshots(func(meta *raft.SnapshotMeta, data []byte) error {
		line := dumpLine{Kind: "snapshot", Index: meta.Index, Term: meta.Term, ID: meta.ID, DataBytes: len(data)}
		for _, s := range meta.Configuration.Servers {
			line.Configuration = append(line.Configuration, configServer{ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String()})
		}
		line.State = json.RawMessage(data)
		if !reveal {
			var err error
			if line.State, err = fsm.RedactJSON(data); err != nil {
				return fmt.Errorf("snapshot %s: %w", meta.ID, err)
			}
		}
		return enc.Encode(line)
	})
}

func setupRafttoolDecrypt(c *cli, fs *flag.FlagSet) action {
	keyFile := fs.String("key-file", "", "read the unlock key from `FILE` instead of stdin (autolocked nodes)")
	out := fs.String("out", "", "write the plaintext copies into `DIR` (new or empty)")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		if *out == "" {
			return usagef("rafttool decrypt needs --out DIR")
		}
		if ents, err := os.ReadDir(*out); err == nil && len(ents) > 0 {
			return fmt.Errorf("--out %s is not empty: give a new or empty directory", *out)
		}
		o, err := datadir.OpenOffline(c.dataDir(), c.offlineKey(ctx, *keyFile))
		if err != nil {
			return err
		}
		defer o.Close()
		if err := os.MkdirAll(filepath.Join(*out, "snapshots"), 0o700); err != nil {
			return err
		}
		if err := os.Chmod(*out, 0o700); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "warning: %s will hold PLAINTEXT copies of the raft log and snapshots: every secret, the CA key and the join tokens. Delete it when you are done.\n", *out)
		var logBuf bytes.Buffer
		if err := dumpEntries(&logBuf, o); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, "log.jsonl"), logBuf.Bytes(), 0o600); err != nil {
			return err
		}
		n := 0
		err = o.Snapshots(func(meta *raft.SnapshotMeta, data []byte) error {
			n++
			m, err := json.MarshalIndent(meta, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(*out, "snapshots", meta.ID+".meta.json"), append(m, '\n'), 0o600); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(*out, "snapshots", meta.ID+".json"), data, 0o600)
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "Decrypted the raft log of node %s into %s: log.jsonl and %d snapshot(s) in snapshots/.\n", o.NodeID, *out, n)
		return err
	}
}

// dumpEntries writes every entry in full: the decoded command, unredacted,
// and the raw data in base64.
func dumpEntries(w io.Writer, o *datadir.OfflineLog) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return o.Entries(func(l *raft.Log) error {
		line := struct {
			dumpLine
			Data string `json:"data,omitempty"`
		}{dumpLine: dumpLine{Kind: "entry", Index: l.Index, Term: l.Term, Type: l.Type.String(), DataBytes: len(l.Data)}, Data: base64.StdEncoding.EncodeToString(l.Data)}
		if l.Type == raft.LogCommand {
			if name, body, err := fsm.Describe(l.Data); err == nil {
				line.Command, line.Body = name, body
			} else {
				line.Error = err.Error()
			}
		}
		return enc.Encode(line)
	})
}
