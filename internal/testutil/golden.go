package testutil

import (
	"bytes"
	"os"
	"testing"
)

// Golden compares got with the golden file at path, failing tb with both
// when they differ. With update (a test's -update flag) it first writes
// got to path: run it so only with the build whose output is the
// reference.
func Golden(tb testing.TB, path string, got []byte, update bool) {
	tb.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run the test with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
