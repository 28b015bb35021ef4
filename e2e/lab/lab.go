// Package lab starts a siphon lab from deploy/compose/compose.yaml through
// testcontainers-go, for end-to-end tests: bring a profile up, find the edge's
// SIP addresses and each replica's metrics, scale a role, stop and start one
// replica, tear it all down. Lab users import it in their own suites:
//
//	l, err := lab.Up(ctx, lab.Options{Profile: "minimal"})
//	defer l.Down(context.Background())
//	addr := l.SIPAddr("udp") // 127.0.0.1:port of the edge
//
// The images must exist (scripts/build-images.sh builds them without a
// registry). testcontainers-go reads TESTCONTAINERS_* from the environment; on a
// machine that cannot pull its reaper image set TESTCONTAINERS_RYUK_DISABLED=true,
// and TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 where it would aim at a gateway.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go/modules/compose"
)

// Compose labels on every container of a project.
const (
	labelProject = "com.docker.compose.project"
	labelService = "com.docker.compose.service"
	labelNumber  = "com.docker.compose.container-number"
)

// Options says which lab to start.
type Options struct {
	// Profile is the siphond mode to run: minimal, full-uas, registrar, proxy,
	// b2bua, call-server or subscription-server.
	Profile string
	// ComposeFile defaults to deploy/compose/compose.yaml, found above the
	// working directory.
	ComposeFile string
	// Env sets compose variables (see deploy/compose/env.example). The edge's
	// host ports default to free ports, so several labs can run side by side.
	Env map[string]string
	// Name is the compose project; default siphon-<profile>-<random>.
	Name string
	// Log, when set, gets one line per step (progress for long start-ups).
	Log func(format string, args ...any)

	portRetries int // Up's own: starts again after a host-port clash
}

// maxPortRetries bounds how often Up starts again with fresh host ports.
const maxPortRetries = 3

// Lab is a running lab.
type Lab struct {
	Profile string
	Name    string
	File    string
	env     map[string]string
	stack   *compose.DockerCompose
	docker  *client.Client
	log     func(string, ...any)
}

// Replica is one container of a service.
type Replica struct {
	ID     string
	Name   string
	Number int
	// Metrics is the host:port of its /metrics, "" when not published.
	Metrics string
}

// Up starts the profile and waits until every container is healthy.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	if opts.Profile == "" {
		return nil, errors.New("lab: Options.Profile is empty")
	}
	file := opts.ComposeFile
	if file == "" {
		var err error
		if file, err = findComposeFile(); err != nil {
			return nil, err
		}
	}
	name := opts.Name
	if name == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		name = "siphon-" + opts.Profile + "-" + hex.EncodeToString(b)
	}
	env := map[string]string{}
	for k, v := range opts.Env {
		env[k] = v
	}
	for _, k := range []string{"SIPHON_SIP_PORT", "SIPHON_SIPS_PORT", "SIPHON_WS_PORT", "SIPHON_WSS_PORT", "SIPHON_METRICS_PORT"} {
		if env[k] == "" {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			env[k] = strconv.Itoa(port)
		}
	}
	if env["SIPHON_BIND_IP"] == "" {
		env["SIPHON_BIND_IP"] = "127.0.0.1"
	}
	l := &Lab{Profile: opts.Profile, Name: name, File: file, env: env, log: opts.Log}
	if l.log == nil {
		l.log = func(string, ...any) {}
	}
	docker, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("lab: docker client: %w", err)
	}
	l.docker = docker
	stack, err := compose.NewDockerComposeWith(compose.WithStackFiles(file), compose.WithProfiles(opts.Profile), compose.StackIdentifier(name))
	if err != nil {
		return nil, fmt.Errorf("lab: compose %s: %w", file, err)
	}
	l.stack = stack
	l.log("lab %s: starting profile %s", name, opts.Profile)
	start := time.Now()
	if err := stack.WithEnv(env).Up(ctx, compose.Wait(true)); err != nil {
		_ = l.Down(context.Background())
		// The host ports were free when picked, but docker hands out the
		// replicas' ephemeral metrics ports from the same range: a clash is
		// not the lab's fault, and fresh ports fix it.
		if strings.Contains(err.Error(), "port is already allocated") && opts.portRetries < maxPortRetries {
			l.log("lab %s: a picked port was taken meanwhile; again with fresh ports", name)
			opts.portRetries++
			return Up(ctx, opts)
		}
		return nil, fmt.Errorf("lab: up %s: %w", opts.Profile, err)
	}
	l.log("lab %s: healthy after %v", name, time.Since(start).Round(time.Millisecond))
	return l, nil
}

// Edge is the edge service of the lab's profile.
func (l *Lab) Edge() string { return "edge-" + l.Profile }

// SIPAddr is the edge's host address for transport udp, tcp, tls, ws or wss.
func (l *Lab) SIPAddr(transport string) string {
	port := l.env["SIPHON_SIP_PORT"]
	switch transport {
	case "tls":
		port = l.env["SIPHON_SIPS_PORT"]
	case "ws":
		port = l.env["SIPHON_WS_PORT"]
	case "wss":
		port = l.env["SIPHON_WSS_PORT"]
	}
	return net.JoinHostPort(l.env["SIPHON_BIND_IP"], port)
}

// HostIP is the host's address on the lab's network: a UA on the host that
// must be reached from inside the lab (a callee the proxy forwards to) binds
// there, as 127.0.0.1 inside a container is the container itself.
func (l *Lab) HostIP(ctx context.Context) (string, error) {
	res, err := l.docker.NetworkInspect(ctx, l.Name+"_default", client.NetworkInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("lab: network of %s: %w", l.Name, err)
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.Is4() {
			return c.Gateway.String(), nil
		}
	}
	return "", fmt.Errorf("lab: network %s_default has no IPv4 gateway", l.Name)
}

// MetricsURL is the edge's /metrics.
func (l *Lab) MetricsURL() string {
	return "http://" + net.JoinHostPort(l.env["SIPHON_BIND_IP"], l.env["SIPHON_METRICS_PORT"]) + "/metrics"
}

// Replicas lists a service's containers (running or not), by replica number.
func (l *Lab) Replicas(ctx context.Context, service string) ([]Replica, error) {
	res, err := l.docker.ContainerList(ctx, client.ContainerListOptions{
		All: true,
		Filters: make(client.Filters).
			Add("label", labelProject+"="+l.Name).
			Add("label", labelService+"="+service),
	})
	if err != nil {
		return nil, fmt.Errorf("lab: list %s: %w", service, err)
	}
	var out []Replica
	for _, c := range res.Items {
		r := Replica{ID: c.ID, Name: strings.TrimPrefix(firstOr(c.Names, ""), "/")}
		r.Number, _ = strconv.Atoi(c.Labels[labelNumber])
		for _, p := range c.Ports {
			if p.PrivatePort == 9090 && p.PublicPort != 0 {
				r.Metrics = net.JoinHostPort(l.env["SIPHON_BIND_IP"], strconv.Itoa(int(p.PublicPort)))
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// Scale sets the number of replicas of service and waits until they are
// healthy, leaving every other container as it is (the edge keeps running). It
// brings the service up again on the same project with a `scale:` override:
// testcontainers-go's compose has no scale call, and going through the same
// library keeps the project's network and labels as testcontainers made them.
func (l *Lab) Scale(ctx context.Context, service string, n int) error {
	l.log("lab %s: scale %s to %d", l.Name, service, n)
	override := fmt.Sprintf("services:\n  %s:\n    scale: %d\n", service, n)
	stack, err := compose.NewDockerComposeWith(compose.WithStackFiles(l.File), compose.WithStackReaders(strings.NewReader(override)),
		compose.WithProfiles(l.Profile), compose.StackIdentifier(l.Name))
	if err != nil {
		return fmt.Errorf("lab: scale %s: %w", service, err)
	}
	defer stack.Close()
	err = stack.WithEnv(l.env).Up(ctx, compose.WithRecreate("never"),
		compose.WithRecreateDependencies("never"), compose.Wait(true))
	if err != nil {
		return fmt.Errorf("lab: scale %s to %d: %w", service, n, err)
	}
	return nil
}

// Stop stops replica number of service (SIGTERM, then SIGKILL after 10 s).
func (l *Lab) Stop(ctx context.Context, service string, number int) error {
	r, err := l.replica(ctx, service, number)
	if err != nil {
		return err
	}
	timeout := 10
	if _, err := l.docker.ContainerStop(ctx, r.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("lab: stop %s: %w", r.Name, err)
	}
	return nil
}

// Kill kills replica number of service at once (SIGKILL): a crash, not a stop.
func (l *Lab) Kill(ctx context.Context, service string, number int) error {
	r, err := l.replica(ctx, service, number)
	if err != nil {
		return err
	}
	if _, err := l.docker.ContainerKill(ctx, r.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("lab: kill %s: %w", r.Name, err)
	}
	return nil
}

// Start starts a stopped replica and waits until it is healthy.
func (l *Lab) Start(ctx context.Context, service string, number int) error {
	r, err := l.replica(ctx, service, number)
	if err != nil {
		return err
	}
	if _, err := l.docker.ContainerStart(ctx, r.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("lab: start %s: %w", r.Name, err)
	}
	return l.waitHealthy(ctx, r)
}

// StartedAt is when replica number of service last started.
func (l *Lab) StartedAt(ctx context.Context, service string, number int) (string, error) {
	r, err := l.replica(ctx, service, number)
	if err != nil {
		return "", err
	}
	res, err := l.docker.ContainerInspect(ctx, r.ID, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("lab: inspect %s: %w", r.Name, err)
	}
	if res.Container.State == nil {
		return "", fmt.Errorf("lab: %s has no state", r.Name)
	}
	return res.Container.State.StartedAt, nil
}

func (l *Lab) replica(ctx context.Context, service string, number int) (Replica, error) {
	rs, err := l.Replicas(ctx, service)
	if err != nil {
		return Replica{}, err
	}
	for _, r := range rs {
		if r.Number == number {
			return r, nil
		}
	}
	return Replica{}, fmt.Errorf("lab: %s has no replica %d (%d replicas)", service, number, len(rs))
}

func (l *Lab) waitHealthy(ctx context.Context, r Replica) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := l.docker.ContainerInspect(ctx, r.ID, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("lab: inspect %s: %w", r.Name, err)
		}
		if st := res.Container.State; st != nil && st.Health != nil && st.Health.Status == "healthy" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s not healthy within 60s", r.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Logs is the last tail lines of every container of the lab, each block
// headed by its container's name: what a failed test prints to say why.
func (l *Lab) Logs(ctx context.Context, tail int) (string, error) {
	res, err := l.docker.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", labelProject+"="+l.Name),
	})
	if err != nil {
		return "", fmt.Errorf("lab: list %s: %w", l.Name, err)
	}
	names := map[string]string{}
	var ids []string
	for _, c := range res.Items {
		names[c.ID] = strings.TrimPrefix(firstOr(c.Names, ""), "/")
		ids = append(ids, c.ID)
	}
	sort.Slice(ids, func(i, j int) bool { return names[ids[i]] < names[ids[j]] })
	var out strings.Builder
	for _, id := range ids {
		rc, err := l.docker.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(tail)})
		if err != nil {
			fmt.Fprintf(&out, "==> %s: logs: %v\n", names[id], err)
			continue
		}
		var buf strings.Builder
		_, err = stdcopy.StdCopy(&buf, &buf, rc)
		rc.Close()
		fmt.Fprintf(&out, "==> %s\n%s", names[id], buf.String())
		if err != nil {
			fmt.Fprintf(&out, "(logs cut short: %v)\n", err)
		}
	}
	return out.String(), nil
}

// Down removes every container, network and volume of the lab, replicas added
// by Scale included.
func (l *Lab) Down(ctx context.Context) error {
	l.log("lab %s: down", l.Name)
	var err error
	if l.stack != nil {
		err = l.stack.Down(ctx, compose.RemoveOrphans(true), compose.RemoveVolumes(true))
	}
	if l.docker != nil {
		_ = l.docker.Close()
	}
	return err
}

func findComposeFile() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "deploy", "compose", "compose.yaml")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("lab: deploy/compose/compose.yaml not found above %s; set Options.ComposeFile", dir)
		}
	}
}

func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("lab: no free port for UDP and TCP")
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
