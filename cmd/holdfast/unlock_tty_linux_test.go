package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/holdfast/holdfast/api"
)

// openPTY opens a pseudo-terminal: the master end (what a terminal
// emulator holds) and the terminal itself.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

func echoOn(t *testing.T, tty *os.File) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// TestUnlockFromTerminal: on a terminal, unlock prompts on stderr, reads
// the key without echo, and restores echo afterwards.
func TestUnlockFromTerminal(t *testing.T) {
	const key = "HFKEY-1-typedatthekeyboard"
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, api.UnlockResponse{State: api.StateReady})
	})
	master, tty := openPTY(t)
	if !isTTY(tty) {
		t.Fatal("isTTY is false for a pseudo-terminal")
	}
	if devNull, err := os.Open(os.DevNull); err == nil {
		if isTTY(devNull) {
			t.Error("isTTY is true for /dev/null")
		}
		devNull.Close()
	}
	if !echoOn(t, tty) {
		t.Fatal("the new pseudo-terminal echoes nothing to start with")
	}

	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	c := &cli{stdin: tty, stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }}
	exited := make(chan int, 1)
	go func() { exited <- c.run(t.Context(), []string{"unlock", "--socket", d.socket}) }()

	stderr.waitFor(t, "Unlock key: ", exited)
	waitUntil(t, "unlock to switch echo off", func() bool { return !echoOn(t, tty) })
	if _, err := master.Write([]byte(key + "\n")); err != nil {
		t.Fatal(err)
	}
	if code := <-exited; code != exitOK || stdout.String() != "Node unlocked.\n" {
		t.Fatalf("unlock on a terminal: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	if got := strings.TrimSpace(d.body("POST /v1/unlock")); got != `{"key":"`+key+`"}` {
		t.Errorf("sent %s; want the typed key", got)
	}
	if !echoOn(t, tty) {
		t.Error("unlock left the terminal without echo")
	}
	if stderr.String() != "Unlock key: \n" {
		t.Errorf("stderr %q; want the prompt and a newline", stderr.String())
	}

	// What the terminal showed: everything the master reads up to a
	// marker written after unlock finished. The key must not be in it.
	shown := terminalOutput(t, tty, master)
	if strings.Contains(shown, "typedatthekeyboard") {
		t.Errorf("the terminal echoed the key: %q", shown)
	}
}

// terminalMarker ends what terminalOutput reads.
const terminalMarker = "END-OF-TEST"

// terminalOutput returns what the terminal showed: everything the master
// reads up to a marker written to the tty after the command finished.
func terminalOutput(t *testing.T, tty, master *os.File) string {
	t.Helper()
	if _, err := tty.Write([]byte(terminalMarker + "\n")); err != nil {
		t.Fatal(err)
	}
	var shown bytes.Buffer
	buf := make([]byte, 256)
	for !bytes.Contains(shown.Bytes(), []byte(terminalMarker)) {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("read the terminal: %v (so far %q)", err, shown.String())
		}
		shown.Write(buf[:n])
	}
	return shown.String()
}
