package bus_test

import (
	"os/exec"
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
