package yaegihost

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

// yaegiHazards lists the constructs in src that Yaegi v0.16.1 gets wrong although go test
// passes (docs/architecture.md, "Living inside Yaegi"), by position:
//   - a parallel assignment mixing a call with other expressions on its right side: the
//     other values are lost ("a, b = v, f()" sets a to its zero value);
//   - the min and max builtins, which its symbol tables lack.
func yaegiHazards(fset *token.FileSet, file *ast.File) []string {
	var out []string
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Lhs) < 2 || len(n.Rhs) != len(n.Lhs) {
				return true
			}
			calls := 0
			for _, r := range n.Rhs {
				if _, ok := r.(*ast.CallExpr); ok {
					calls++
				}
			}
			if calls > 0 && calls < len(n.Rhs) {
				out = append(out, fmt.Sprintf("%s: a parallel assignment mixes a call with other values: assign one at a time", fset.Position(n.Pos())))
			}
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && (id.Name == "min" || id.Name == "max") && id.Obj == nil {
				out = append(out, fmt.Sprintf("%s: the %s builtin does not exist under Yaegi v0.16.1", fset.Position(n.Pos()), id.Name))
			}
		}
		return true
	})
	return out
}

// The plugin's code (what Traefik's Yaegi loads: plugin/ and its packages, tests left out)
// holds none of the hazards.
func TestNoYaegiHazardsInThePlugin(t *testing.T) {
	pluginFiles(t, func(fset *token.FileSet, f *ast.File) {
		for _, h := range yaegiHazards(fset, f) {
			t.Error(h)
		}
	})
}

// methodsOffTheRequestPath are the methods the plugin may declare: those Go requires (the
// handler and the claim writer's http.ResponseWriter, the error type) and those run at start,
// by the background loops or when dialing. Under Yaegi a call of any other method goes through
// reflect.Value.Call at three times a function's cost (BenchmarkCallShapesUnderYaegi), so the
// code a request runs is written as functions taking their receiver first.
var methodsOffTheRequestPath = map[string]bool{
	"ServeHTTP": true, "WriteHeader": true, "Write": true, "Flush": true, "Hijack": true, "Error": true,
	"cacheRegistryKey": true, "configured": true, "registryKey": true, // New
	"startSweeper": true, "sweepHot": true, "invalidate": true, "confirmFresh": true, // sweeper, poll
	"addCache": true, "start": true, "poll": true, "applySettings": true, "flush": true, // background loop
	"markDown": true, "dial": true, "askSentinels": true, // a Redis connection failed or is dialed
}

// No method the plugin declares is outside methodsOffTheRequestPath.
func TestRequestCodeDeclaresNoMethods(t *testing.T) {
	pluginFiles(t, func(fset *token.FileSet, f *ast.File) {
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil && !methodsOffTheRequestPath[fn.Name.Name] {
				t.Errorf("%s: method %s: under Yaegi a method call costs three function calls; if a request runs it, "+
					"make it a function taking its receiver first, otherwise list it in methodsOffTheRequestPath",
					fset.Position(fn.Pos()), fn.Name.Name)
			}
		}
	})
}

// pluginFiles parses every non-test Go file of plugin/ and its packages.
func pluginFiles(t *testing.T, check func(*token.FileSet, *ast.File)) {
	root := filepath.Join(testenv.RepoRoot(), "plugin")
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		check(fset, f)
		return nil
	})
	if err != nil || files < 10 {
		t.Fatalf("read %d plugin files: %v", files, err)
	}
}

// The check finds what it looks for (the assignment that dropped key hashes in 2026-12).
func TestYaegiHazardsFound(t *testing.T) {
	src := `package p
func f(b *struct{ hash, hint string }, hash string) {
	b.hash, b.hint = hash, hint(hash)
	x, y := g(), h()
	_, _ = x, y
	_ = max(1, 2)
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := yaegiHazards(fset, f)
	if len(got) != 2 || !strings.Contains(got[0], "p.go:3") || !strings.Contains(got[1], "max builtin") {
		t.Fatalf("found %q", got)
	}
}
