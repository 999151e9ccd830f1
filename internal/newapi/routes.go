// Package newapi is the real New API in the test loop: its route table read from its router
// source, and (newapi.go) a throwaway New API process on SQLite or MariaDB, bootstrapped with
// a channel and API keys.
package newapi

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Route is one route New API's gin router registers.
type Route struct {
	Method string
	Path   string // gin pattern: static segments, ":param", a final "*catchall"
	// Middlewares are the names of the middleware.X handlers in the route's chain, in order.
	Middlewares []string
}

// keyMiddlewares read an API key (a token key) from the request.
var keyMiddlewares = map[string]bool{"TokenAuth": true, "TokenAuthReadOnly": true, "TokenOrUserAuth": true}

// ReadsKey reports whether the route's chain reads an API key.
func (r Route) ReadsKey() bool {
	for _, m := range r.Middlewares {
		if keyMiddlewares[m] {
			return true
		}
	}
	return false
}

// RoutesFromSource reads every route New API registers from the Go source of its router
// package (dir is New API's source root). It follows what gin does at start: SetRouter's
// calls, Group/Use on groups (and on groups passed to helper functions), route-level
// middleware, and loops over package-level route tables. Both branches of an if are taken,
// so the result is a superset of what one configuration registers.
func RoutesFromSource(dir string) ([]Route, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "router", "*.go"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("newapi: no router source under %s", dir)
	}
	in := &interp{funcs: map[string]*ast.FuncDecl{}, vars: map[string]ast.Expr{}, seen: map[string]bool{}}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("newapi: %w", err)
		}
		for _, d := range file.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					in.funcs[d.Name.Name] = d
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					if vs, ok := s.(*ast.ValueSpec); ok {
						for i, n := range vs.Names {
							if i < len(vs.Values) {
								in.vars[n.Name] = vs.Values[i]
							}
						}
					}
				}
			}
		}
	}
	if in.funcs["SetRouter"] == nil {
		return nil, fmt.Errorf("newapi: router.SetRouter not found under %s", dir)
	}
	engine := &group{base: "/"}
	if err := in.call("SetRouter", []value{engine}); err != nil {
		return nil, err
	}
	sort.Slice(in.routes, func(i, j int) bool {
		if in.routes[i].Path != in.routes[j].Path {
			return in.routes[i].Path < in.routes[j].Path
		}
		return in.routes[i].Method < in.routes[j].Method
	})
	return in.routes, nil
}

// A value in the interpreter: *group, middleware (a name), str, or record (a table row).
type value interface{}

type group struct {
	base string
	mws  []string
}
type middleware string
type str string
type record map[string]ast.Expr

type interp struct {
	funcs  map[string]*ast.FuncDecl
	vars   map[string]ast.Expr
	routes []Route
	seen   map[string]bool
}

type env map[string]value

var routeMethods = map[string]string{"GET": "GET", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH",
	"DELETE": "DELETE", "HEAD": "HEAD", "OPTIONS": "OPTIONS"}

func (in *interp) call(name string, args []value) error {
	fd := in.funcs[name]
	e := env{}
	i := 0
	for _, field := range fd.Type.Params.List {
		for _, n := range field.Names {
			if i < len(args) {
				e[n.Name] = args[i]
			}
			i++
		}
	}
	return in.block(fd.Body.List, e)
}

func (in *interp) block(stmts []ast.Stmt, e env) error {
	for _, st := range stmts {
		if err := in.stmt(st, e); err != nil {
			return err
		}
	}
	return nil
}

func (in *interp) stmt(st ast.Stmt, e env) error {
	switch st := st.(type) {
	case *ast.BlockStmt:
		return in.block(st.List, e)
	case *ast.IfStmt:
		if err := in.block(st.Body.List, e); err != nil {
			return err
		}
		if st.Else != nil {
			return in.stmt(st.Else, e)
		}
	case *ast.AssignStmt:
		for i, lhs := range st.Lhs {
			id, ok := lhs.(*ast.Ident)
			if !ok || i >= len(st.Rhs) {
				continue
			}
			if v := in.expr(st.Rhs[i], e); v != nil {
				e[id.Name] = v
			}
		}
	case *ast.ExprStmt:
		if c, ok := st.X.(*ast.CallExpr); ok {
			return in.callExpr(c, e)
		}
	case *ast.RangeStmt:
		id, ok := st.X.(*ast.Ident)
		if !ok {
			return nil
		}
		lit, ok := in.vars[id.Name].(*ast.CompositeLit)
		if !ok {
			return fmt.Errorf("newapi: range over %s, which is not a table literal", id.Name)
		}
		loopVar, _ := st.Value.(*ast.Ident)
		for _, elt := range lit.Elts {
			row := record{}
			if cl, ok := elt.(*ast.CompositeLit); ok {
				for _, kv := range cl.Elts {
					if kv, ok := kv.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok {
							row[k.Name] = kv.Value
						}
					}
				}
			}
			inner := env{}
			for k, v := range e {
				inner[k] = v
			}
			if loopVar != nil {
				inner[loopVar.Name] = row
			}
			if err := in.block(st.Body.List, inner); err != nil {
				return err
			}
		}
	}
	return nil
}

// callExpr runs a call statement: Use and route registration on a group, or a call of a
// router function with groups as arguments.
func (in *interp) callExpr(c *ast.CallExpr, e env) error {
	switch fn := c.Fun.(type) {
	case *ast.Ident:
		// seen guards against a router function that (directly or not) calls itself.
		site := fn.Name + fmt.Sprint(c.Pos())
		if in.funcs[fn.Name] == nil || in.seen[site] {
			return nil
		}
		in.seen[site] = true
		var args []value
		for _, a := range c.Args {
			args = append(args, in.expr(a, e))
		}
		err := in.call(fn.Name, args)
		delete(in.seen, site)
		return err
	case *ast.SelectorExpr:
		recv, ok := fn.X.(*ast.Ident)
		if !ok {
			return nil
		}
		g, ok := e[recv.Name].(*group)
		if !ok {
			return nil
		}
		switch m := fn.Sel.Name; {
		case m == "Use":
			g.mws = append(g.mws, in.middlewares(c.Args, e)...)
		case routeMethods[m] != "" || m == "Any":
			if len(c.Args) == 0 {
				return nil
			}
			p, ok := in.expr(c.Args[0], e).(str)
			if !ok {
				return fmt.Errorf("newapi: %s.%s with a path that is not a constant", recv.Name, m)
			}
			methods := []string{routeMethods[m]}
			if m == "Any" {
				methods = []string{"GET", "POST", "PUT", "PATCH", "HEAD", "OPTIONS", "DELETE", "CONNECT", "TRACE"}
			}
			for _, method := range methods {
				in.add(method, g, string(p), c.Args[1:], e)
			}
		case m == "Handle":
			if len(c.Args) < 2 {
				return nil
			}
			method, ok1 := in.expr(c.Args[0], e).(str)
			p, ok2 := in.expr(c.Args[1], e).(str)
			if !ok1 || !ok2 {
				return fmt.Errorf("newapi: %s.Handle with a method or path that is not a constant", recv.Name)
			}
			in.add(string(method), g, string(p), c.Args[2:], e)
		}
	}
	return nil
}

func (in *interp) add(method string, g *group, rel string, handlers []ast.Expr, e env) {
	chain := append(append([]string(nil), g.mws...), in.middlewares(handlers, e)...)
	in.routes = append(in.routes, Route{Method: method, Path: joinPaths(g.base, rel), Middlewares: chain})
}

func (in *interp) middlewares(args []ast.Expr, e env) []string {
	var out []string
	for _, a := range args {
		if m, ok := in.expr(a, e).(middleware); ok {
			out = append(out, string(m))
		}
	}
	return out
}

// expr evaluates what route registration needs: strings, http.Method* constants, table row
// fields, groups and middleware handlers.
func (in *interp) expr(x ast.Expr, e env) value {
	switch x := x.(type) {
	case *ast.BasicLit:
		if x.Kind == token.STRING {
			s, err := strconv.Unquote(x.Value)
			if err == nil {
				return str(s)
			}
		}
	case *ast.Ident:
		return e[x.Name]
	case *ast.SelectorExpr:
		if id, ok := x.X.(*ast.Ident); ok {
			if row, ok := e[id.Name].(record); ok {
				return in.expr(row[x.Sel.Name], e)
			}
			if id.Name == "http" && strings.HasPrefix(x.Sel.Name, "Method") {
				return str(strings.ToUpper(strings.TrimPrefix(x.Sel.Name, "Method")))
			}
		}
	case *ast.CallExpr:
		sel, ok := x.Fun.(*ast.SelectorExpr)
		if !ok {
			return nil
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok {
			return nil
		}
		if id.Name == "middleware" {
			return middleware(sel.Sel.Name)
		}
		if g, ok := e[id.Name].(*group); ok && sel.Sel.Name == "Group" && len(x.Args) > 0 {
			rel, _ := in.expr(x.Args[0], e).(str)
			ng := &group{base: joinPaths(g.base, string(rel)), mws: append([]string(nil), g.mws...)}
			ng.mws = append(ng.mws, in.middlewares(x.Args[1:], e)...)
			return ng
		}
	}
	return nil
}

// joinPaths is gin's: path.Join, keeping a trailing slash the relative path ends with.
func joinPaths(abs, rel string) string {
	if rel == "" {
		return abs
	}
	final := path.Join(abs, rel)
	if strings.HasSuffix(rel, "/") && !strings.HasSuffix(final, "/") {
		return final + "/"
	}
	return final
}
