package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports are packages cmd/holdfast's own code must not import:
// the raft log's format and the cipher code belong to raftlog and
// internal/seal, reached only through the packages that own them
// (datadir for offline tools, keyfiles for key files, internal/bench for
// the benchmark harness). The binary stays flags, output and calls.
var forbiddenImports = []string{
	"github.com/holdfast/holdfast/raftlog",
	"github.com/holdfast/holdfast/internal/seal",
	"github.com/hashicorp/raft-boltdb",
	"go.etcd.io/bbolt",
}

// TestCommandImportsNoStorageInternals parses the import lines of every
// non-test Go file of this package, whatever its build tags, and fails on
// a forbidden one (a path or one below it: raft-boltdb/v2 counts).
func TestCommandImportsNoStorageInternals(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		checked++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("%s: import %s: %v", fset.Position(imp.Pos()), imp.Path.Value, err)
			}
			for _, bad := range forbiddenImports {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s; cmd/holdfast must reach it through the package that owns it", fset.Position(imp.Pos()), path)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no Go files checked: the test runs in the wrong directory")
	}
}
