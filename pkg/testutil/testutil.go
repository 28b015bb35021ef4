// Package testutil starts the real servers siphon's tests run against: an
// in-process nats-server on a random port, and the redis-server and nats-server
// binaries that the README's test command installs.
package testutil

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS starts an in-process nats-server on a random loopback port, stopped at
// the end of the test, and returns it.
func NATS(t testing.TB) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("in-process nats-server not ready in 10s")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// Conn connects to url and closes the connection at the end of the test.
func Conn(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// handedOut are the ports FreePort returned in this process: the kernel
// gives a just-closed port out again, and a test asking for two ports at
// once (SIP and metrics) must not get one twice.
var handedOut sync.Map

// FreePort returns a loopback port nobody listens on for both UDP and TCP,
// and one it has not returned before.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if _, taken := handedOut.LoadOrStore(port, true); !taken {
			return port
		}
	}
	t.Fatal("no free port for UDP and TCP")
	return 0
}

// Binary finds an installed program or fails the test saying how to get it.
func Binary(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's %s (the README's test command does)", name, pkg)
	}
	return path
}

// Proc is a program started for a test.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Done is closed when the program has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the program exited; read it after Done.
func (p *Proc) Err() error { return p.err }

// Process starts a program that runs until it exits or the test ends; its output
// is shown when the test fails.
func Process(t testing.TB, path string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Dir = t.TempDir()
	logPath := filepath.Join(t.TempDir(), filepath.Base(path)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		logFile.Close()
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s output:\n%s", filepath.Base(path), Tail(string(out), 4000))
			}
		}
	})
	return p
}

// Tail is the last n bytes of s: enough of a long output to see why it failed.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Redis starts a real redis-server on a free loopback port and returns its URL.
func Redis(t testing.TB) string {
	t.Helper()
	bin := Binary(t, "redis-server", "redis-server")
	dir := t.TempDir()
	ports, _ := serve(t, bin, 1, func(p []int) []string {
		return []string{"--port", strconv.Itoa(p[0]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	})
	return fmt.Sprintf("redis://127.0.0.1:%d/0", ports[0])
}

// serve starts a server program on n free loopback ports (args makes its
// command line from them) and waits until the first accepts connections.
// A port taken between FreePort's check and the program's bind makes the
// program exit: it is started again on other ports, up to five times.
func serve(t testing.TB, bin string, n int, args func(ports []int) []string) ([]int, *Proc) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ports := make([]int, n)
		for i := range ports {
			ports[i] = FreePort(t)
		}
		p := Process(t, bin, args(ports)...)
		addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		deadline := time.Now().Add(10 * time.Second)
		for {
			if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
				c.Close()
				return ports, p
			}
			select {
			case <-p.Done():
				if attempt == 5 {
					t.Fatalf("%s exited five times before accepting connections: %v", filepath.Base(bin), p.Err())
				}
			case <-time.After(5 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatalf("%s not accepting connections on %s within 10s", filepath.Base(bin), addr)
				}
				continue
			}
			break
		}
	}
}

// NATSBinary is a real nats-server process.
type NATSBinary struct {
	*Proc
	// URL is the client URL, nats://127.0.0.1:port.
	URL string
	// Monitor is the monitoring endpoint's host:port.
	Monitor string
}

// NATSServer starts the real nats-server binary on free loopback ports.
func NATSServer(t testing.TB) *NATSBinary {
	t.Helper()
	bin := Binary(t, "nats-server", "nats-server")
	ports, p := serve(t, bin, 2, func(p []int) []string {
		return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(p[0]), "-m", strconv.Itoa(p[1])}
	})
	return &NATSBinary{Proc: p, URL: fmt.Sprintf("nats://127.0.0.1:%d", ports[0]), Monitor: fmt.Sprintf("127.0.0.1:%d", ports[1])}
}

// WaitNoSubscriber waits until no client of the server subscribes to a subject
// containing fragment, as its /connz reports; it returns how long that took.
func (n *NATSBinary) WaitNoSubscriber(t testing.TB, fragment string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		res, err := http.Get("http://" + n.Monitor + "/connz?subs=1")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if !strings.Contains(string(body), fragment) {
				return time.Since(start)
			}
		}
		if time.Since(start) > within {
			t.Fatalf("nats-server still lists a subscriber to %q after %v", fragment, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitSubscribers waits until nats-server lists n subscriptions to subject
// (a queue group's members: a killed replica's gone once its connection
// closed) and fails after within.
func (n *NATSBinary) WaitSubscribers(t testing.TB, subject string, want int, within time.Duration) {
	t.Helper()
	start := time.Now()
	got := -1
	for {
		res, err := http.Get("http://" + n.Monitor + "/connz?subs=1")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if got = strings.Count(string(body), `"`+subject+`"`); got == want {
				return
			}
		}
		if time.Since(start) > within {
			t.Fatalf("nats-server lists %d subscribers to %q after %v, want %d", got, subject, within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SharedTestdata finds the shared third-party test data (RFC 4475, RFC 5118,
// PROTOS), which sits beside the checkout as shared/testdata.
func SharedTestdata(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		for _, p := range []string{filepath.Join(d, "shared", "testdata"), filepath.Join(d, "..", "shared", "testdata")} {
			if st, err := os.Stat(filepath.Join(p, "rfc4475")); err == nil && st.IsDir() {
				return p
			}
		}
		if filepath.Dir(d) == d {
			t.Fatalf("shared/testdata not found above %s: it sits beside the checkout", dir)
		}
	}
}
