package manager

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestManagerChoosesNoHTTPStatus: manager returns typed errors and
// sentinels with api error codes; package api alone maps them to HTTP
// statuses. Every non-test file of manager (and of any package under it)
// is parsed: none uses net/http's Status constants, builds an api.Error
// by hand, passes a status number to package api, or reads the Status
// of an *api.Error (retry logic keys on codes).
func TestManagerChoosesNoHTTPStatus(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			files = append(files, path)
		}
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("found %d files: %v", len(files), err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		httpName, apiName := "", ""
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			name := ""
			if imp.Name != nil {
				name = imp.Name.Name
			}
			switch p {
			case "net/http":
				httpName = "http"
				if name == "." {
					t.Errorf("%s: dot-imports net/http", path)
				} else if name != "" {
					httpName = name
				}
			case "github.com/holdfast/holdfast/api":
				apiName = "api"
				if name != "" {
					apiName = name
				}
			}
		}
		// Names declared as *api.Error (var ae *api.Error).
		apiErrs := map[string]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok && isAPIError(vs.Type, apiName) {
				for _, id := range vs.Names {
					apiErrs[id.Name] = true
				}
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			at := func() token.Position { return fset.Position(n.Pos()) }
			switch n := n.(type) {
			case *ast.SelectorExpr:
				x, ok := n.X.(*ast.Ident)
				if !ok {
					return true
				}
				if httpName != "" && x.Name == httpName && strings.HasPrefix(n.Sel.Name, "Status") {
					t.Errorf("%s: uses http.%s; return an api error code instead", at(), n.Sel.Name)
				}
				if apiErrs[x.Name] && n.Sel.Name == "Status" {
					t.Errorf("%s: reads %s.Status; key on %s.Code", at(), x.Name, x.Name)
				}
			case *ast.CompositeLit:
				if isAPIError(n.Type, apiName) {
					t.Errorf("%s: builds an api.Error by hand; use api.Errorf or api.Wrap with a code", at())
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || apiName == "" || x.Name != apiName {
					return true
				}
				for _, a := range n.Args {
					if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.INT {
						if v, err := strconv.Atoi(lit.Value); err == nil && v >= 100 && v <= 599 {
							t.Errorf("%s: passes %d to api.%s; pass an api error code", at(), v, sel.Sel.Name)
						}
					}
				}
			}
			return true
		})
	}
}

// isAPIError reports whether e is api.Error or *api.Error.
func isAPIError(e ast.Expr, apiName string) bool {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Error" {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && apiName != "" && x.Name == apiName
}
