package bus_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The bus and its drivers are transport only: they know messages and
// headers, not the event catalog (event/eventmsg converts), and they carry
// no tracing of their own. A driver that needs a topic table gets it from
// its caller as []bus.TopicConfig.
func TestBusDoesNotImportEventOrOpenTelemetry(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	pkgs := []string{"github.com/eventmart/eventmart/bus/..."}
	out, err := exec.Command(goTool, append([]string{"list", "-deps", "-f", `{{.ImportPath}}`}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %q", deps)
	}
	for _, d := range deps {
		if d == "github.com/eventmart/eventmart/event" || strings.HasPrefix(d, "github.com/eventmart/eventmart/event/") ||
			strings.HasPrefix(d, "go.opentelemetry.io/") {
			t.Errorf("bus or a driver depends on %s", d)
		}
	}
}

// Code outside a driver's package holds a driver as a bus.Bus (or a small
// interface of its own) and never asserts it back to the driver's type: an
// optional capability is an interface its user declares (see
// obs.ClusterReporter).
func TestNoTypeAssertionToADriverOutsideIt(t *testing.T) {
	drivers := map[string]bool{
		"github.com/eventmart/eventmart/bus/kafka":    true,
		"github.com/eventmart/eventmart/bus/embedded": true,
	}
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != ".." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		local := map[string]bool{} // names under which f imports a driver
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !drivers[p] || filepath.ToSlash(filepath.Dir(path)) == "../"+strings.TrimPrefix(p, "github.com/eventmart/eventmart/") {
				continue // not a driver, or the driver's own tests
			}
			name := p[strings.LastIndex(p, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			local[name] = true
		}
		if len(local) == 0 {
			return nil
		}
		isDriverType := func(e ast.Expr) bool {
			if s, ok := e.(*ast.StarExpr); ok {
				e = s.X
			}
			sel, ok := e.(*ast.SelectorExpr)
			if !ok {
				return false
			}
			id, ok := sel.X.(*ast.Ident)
			return ok && local[id.Name]
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.TypeAssertExpr:
				if n.Type != nil && isDriverType(n.Type) {
					t.Errorf("%s: type assertion to a driver type", fset.Position(n.Pos()))
				}
			case *ast.TypeSwitchStmt:
				for _, c := range n.Body.List {
					for _, e := range c.(*ast.CaseClause).List {
						if isDriverType(e) {
							t.Errorf("%s: type switch on a driver type", fset.Position(e.Pos()))
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("read only %d Go files of the module", files)
	}
}
