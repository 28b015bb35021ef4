package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestContractLivesHere fails when a subject, a bus header or an event name is
// written as a string anywhere in the repository but this package, tests
// included: everything else must use the constants and functions here.
func TestContractLivesHere(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	here, _ := filepath.Abs(".")
	// The strings that are the contract: every header and event name declared here.
	var contract []string
	for _, name := range []string{"wire.go", "events.go"} {
		for _, v := range constStrings(t, name) {
			if strings.HasPrefix(v, "Siphon-") || strings.HasPrefix(v, "Nats-Service-") ||
				(strings.Contains(v, ".") && !strings.Contains(v, "%") && !strings.Contains(v, ">")) {
				contract = append(contract, v)
			}
		}
	}
	if len(contract) < 20 {
		t.Fatalf("found only %d contract strings in this package: the test reads it wrong", len(contract))
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == here || d.Name() == "testdata" || d.Name() == "vendor" || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		checked++
		for _, lit := range stringLiterals(t, path) {
			for _, c := range contract {
				if lit.value == c || strings.Contains(lit.value, "siphon.v1.") || strings.HasPrefix(lit.value, "Siphon-") {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s:%d: %q belongs in pkg/wire (use its constant)", rel, lit.line, lit.value)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d Go files under %s", checked, root)
	}
}

type literal struct {
	value string
	line  int
}

func stringLiterals(t *testing.T, path string) []literal {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []literal
	ast.Inspect(f, func(n ast.Node) bool {
		if _, ok := n.(*ast.ImportSpec); ok {
			return false
		}
		if b, ok := n.(*ast.BasicLit); ok && b.Kind == token.STRING {
			if v, err := strconv.Unquote(b.Value); err == nil {
				out = append(out, literal{value: v, line: fset.Position(b.Pos()).Line})
			}
		}
		return true
	})
	return out
}

// constStrings are the string constants a file of this package declares.
func constStrings(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, lit := range stringLiterals(t, name) {
		out = append(out, lit.value)
	}
	return out
}
