package chatx_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/chatx/chatx"

// imports lists, for every package of the module, the packages it imports
// directly (not its tests), as `go list` reports them.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		graph[strings.TrimPrefix(fields[0], module)] = fields[1:]
	}
	return graph
}

// layer maps a package path relative to the module ("/adapters/tcp/internal")
// to its layer and, for adapters, the adapter's name.
func layer(rel string) (string, string) {
	parts := strings.Split(strings.TrimPrefix(rel, "/"), "/")
	if parts[0] == "adapters" && len(parts) > 1 {
		return "adapters", parts[1]
	}
	return parts[0], ""
}

// TestDependencyRule enforces DESIGN.md §2: domain imports nothing of the
// project; ports only domain; app only domain and ports; no adapter imports
// another adapter, though adapters may share the module-root /internal/...
// packages, which import only domain, ports and /internal/...; only the root
// package (wire.go) and cmd/ see every adapter; Wire stays out of domain,
// ports and app.
func TestDependencyRule(t *testing.T) {
	graph := imports(t)
	if len(graph) < 3 {
		t.Fatalf("go list found only %d packages", len(graph))
	}
	for _, v := range violations(graph) {
		t.Error(v)
	}
}

// TestDependencyRuleCatchesViolations feeds the checker a graph that breaks
// every rule once, so the rule cannot pass by checking nothing.
func TestDependencyRuleCatchesViolations(t *testing.T) {
	bad := map[string][]string{
		"/domain":          {module + "/ports"},
		"/ports":           {module + "/app"},
		"/app":             {module + "/adapters/tcp", "github.com/google/wire"},
		"/adapters/tcp":    {module + "/adapters/storage"},
		"/adapters/memory": {module + "/domain", module + "/ports", module + "/adapters/memory/internal/x"},
		"/cmd/chatx":       {module + "/adapters/tcp"},
		"/adapters/udp":    {module + "/domain", module + "/internal/peertls"},
		"/internal/x":      {module + "/domain", module + "/internal/y", module + "/adapters/udp"},
	}
	got := violations(bad)
	if len(got) != 6 {
		t.Fatalf("want 6 violations, got %d: %q", len(got), got)
	}
}

func violations(graph map[string][]string) []string {
	var out []string
	for pkg, imps := range graph {
		from, fromAdapter := layer(pkg)
		for _, imp := range imps {
			if strings.HasPrefix(imp, "github.com/google/wire") && (from == "domain" || from == "ports" || from == "app") {
				out = append(out, pkg+" imports "+imp+": Wire belongs in adapters' provider sets, wire.go and cmd/")
			}
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to, toAdapter := layer(strings.TrimPrefix(imp, module))
			ok := true
			switch from {
			case "domain":
				ok = to == "domain"
			case "ports":
				ok = to == "domain" || to == "ports"
			case "app":
				ok = to == "domain" || to == "ports" || to == "app"
			case "adapters":
				ok = to == "domain" || to == "ports" || to == "internal" || (to == "adapters" && toAdapter == fromAdapter)
			case "internal":
				ok = to == "domain" || to == "ports" || to == "internal"
			}
			if !ok {
				out = append(out, "dependency rule: "+pkg+" must not import "+imp)
			}
		}
	}
	return out
}

// TestInjectorsOnlyInWireGo keeps wire.Build calls in the root wire.go.
func TestInjectorsOnlyInWireGo(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || path == "wire.go" || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("wire.Build(")) {
			t.Errorf("%s calls wire.Build: injectors live only in the root wire.go", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
