package twiliosim

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestHandlersReadOnlyDeclaredParameters ties the parameter names that the
// handlers' source code reads (form.Get("To"), q.Has("PageSize"),
// form["MediaUrl"], set("SmsUrl", ...), and name lists they loop over) to the
// route table's queryParams and formFields, which the conformance test holds
// to the spec. A handler reading a misspelt or invented parameter fails here.
func TestHandlersReadOnlyDeclaredParameters(t *testing.T) {
	sim := New(Options{})
	defer sim.Close()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	funcs := map[string]*ast.FuncDecl{}
	var sources []*ast.File
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, f)
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok {
				funcs[fd.Name.Name] = fd
			}
		}
	}

	// Map handler names to the patterns of their routes in the route tables.
	handlerRoutes := map[string][]string{}
	inspectRoutes := func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		var pattern, handler string
		for _, e := range cl.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			switch key, _ := kv.Key.(*ast.Ident); {
			case key == nil:
			case key.Name == "pattern":
				if lit, ok := kv.Value.(*ast.BasicLit); ok {
					pattern, _ = strconv.Unquote(lit.Value)
				}
			case key.Name == "handle":
				if sel, ok := kv.Value.(*ast.SelectorExpr); ok {
					handler = sel.Sel.Name
				}
			}
		}
		if pattern != "" && handler != "" {
			handlerRoutes[handler] = append(handlerRoutes[handler], pattern)
		}
		return true
	}
	for _, f := range sources {
		ast.Inspect(f, inspectRoutes)
	}
	if len(handlerRoutes) == 0 {
		t.Fatal("found no routes in the route tables")
	}

	for handler, patterns := range handlerRoutes {
		var declared []string
		for _, rt := range sim.routes {
			if slices.Contains(patterns, rt.pattern) {
				declared = append(declared, rt.queryParams...)
				declared = append(declared, rt.formFields...)
			}
		}
		fd := funcs[handler]
		if fd == nil {
			t.Fatalf("handler %s not found", handler)
		}
		for _, name := range paramNamesRead(fd) {
			if !slices.Contains(declared, name) {
				t.Errorf("%s reads parameter %q, which its route does not declare", handler, name)
			}
		}
	}
}

// paramNamesRead collects the parameter names a handler reads.
func paramNamesRead(fd *ast.FuncDecl) []string {
	var names []string
	lit := func(e ast.Expr) {
		if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
			s, _ := strconv.Unquote(b.Value)
			names = append(names, s)
		}
	}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			switch fun := n.Fun.(type) {
			case *ast.SelectorExpr:
				if x, ok := fun.X.(*ast.Ident); ok && (x.Name == "form" || x.Name == "q") &&
					(fun.Sel.Name == "Get" || fun.Sel.Name == "Has") && len(n.Args) == 1 {
					lit(n.Args[0])
				}
			case *ast.Ident:
				if fun.Name == "set" && len(n.Args) > 0 {
					lit(n.Args[0])
				}
			}
		case *ast.IndexExpr:
			if x, ok := n.X.(*ast.Ident); ok && x.Name == "form" {
				lit(n.Index)
			}
		case *ast.CompositeLit:
			// Name lists looped over: []string{"To", "From", ...}.
			if at, ok := n.Type.(*ast.ArrayType); ok {
				if id, ok := at.Elt.(*ast.Ident); ok && id.Name == "string" {
					for _, e := range n.Elts {
						lit(e)
					}
				}
			}
		}
		return true
	})
	return names
}
