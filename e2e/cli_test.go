package e2e_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestComposeCLI is the README's lab walk-through with the docker compose CLI:
// up answers OPTIONS on 127.0.0.1, --scale uas=3 leaves the edge running, and
// down leaves nothing behind.
func TestComposeCLI(t *testing.T) {
	file, err := filepath.Abs("../deploy/compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	project := fmt.Sprintf("siphon-cli-%d", time.Now().UnixNano()%1_000_000)
	sipPort, sipsPort, metricsPort := freePort(t), freePort(t), freePort(t)
	env := append(os.Environ(),
		fmt.Sprintf("SIPHON_SIP_PORT=%d", sipPort), fmt.Sprintf("SIPHON_SIPS_PORT=%d", sipsPort),
		fmt.Sprintf("SIPHON_METRICS_PORT=%d", metricsPort))
	dc := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "docker", append([]string{"compose", "-p", project, "-f", file, "--profile", "minimal"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker compose %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		cmd := exec.Command("docker", "compose", "-p", project, "-f", file, "--profile", "minimal", "down", "-v")
		cmd.Env = env
		_ = cmd.Run()
	})

	dc("up", "-d", "--wait")
	c := newClient(t)
	sipAddr := net.JoinHostPort("127.0.0.1", fmt.Sprint(sipPort))
	if res, err := options(c, "udp", sipAddr, 10*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS to the lab: %v %v", res, err)
	}
	edgeStarted := strings.TrimSpace(inspect(t, project+"-edge-minimal-1", "{{.State.StartedAt}}"))

	dc("up", "-d", "--wait", "--scale", "uas=3")
	if n := strings.Count(dc("ps", "--status", "running", "--format", "{{.Service}}", "uas"), "uas"); n != 3 {
		t.Fatalf("%d uas replicas running, want 3", n)
	}
	if now := strings.TrimSpace(inspect(t, project+"-edge-minimal-1", "{{.State.StartedAt}}")); now != edgeStarted {
		t.Fatalf("--scale uas=3 restarted the edge (%s → %s)", edgeStarted, now)
	}
	if res, err := options(c, "udp", sipAddr, 10*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS after scaling: %v %v", res, err)
	}

	dc("down", "-v")
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=com.docker.compose.project="+project, "--format", "{{.Names}}").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("after down: %q %v", out, err)
	}
	nets, _ := exec.Command("docker", "network", "ls", "--filter", "label=com.docker.compose.project="+project, "--format", "{{.Name}}").CombinedOutput()
	if strings.TrimSpace(string(nets)) != "" {
		t.Fatalf("networks left after down: %s", nets)
	}
}

func inspect(t *testing.T, container, format string) string {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", format, container).CombinedOutput()
	if err != nil {
		t.Fatalf("docker inspect %s: %v\n%s", container, err, out)
	}
	return string(out)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
