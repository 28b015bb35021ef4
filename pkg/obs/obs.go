// Package obs is what every process shows about itself: Prometheus metrics,
// /healthz and /readyz, and its slog logger.
package obs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger makes the process logger, and the default one. level and format
// are validated flags.
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	var l *slog.Logger
	if format == "json" {
		l = slog.New(slog.NewJSONHandler(w, opts))
	} else {
		l = slog.New(slog.NewTextHandler(w, opts))
	}
	// Libraries log through slog.Default (sipgo's connection pool, for one)
	// or the standard logger: both then write through l, one format only.
	slog.SetDefault(l)
	return l
}

// Metrics are the SIP and bus series every role records into.
type Metrics struct {
	Registry *prometheus.Registry
	// Requests counts SIP requests a role received: role, method.
	Requests *prometheus.CounterVec
	// Responses counts SIP responses a role sent: role, method, code.
	Responses *prometheus.CounterVec
	// BusRoundTrip is the time from the edge publishing a request to the final
	// response from the role: role, method.
	BusRoundTrip *prometheus.HistogramVec
	// Dropped counts input the edge could not answer: reason.
	Dropped *prometheus.CounterVec
}

// NewMetrics registers the series, plus Go runtime and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siphon_sip_requests_total", Help: "SIP requests received, by role and method.",
		}, []string{"role", "method"}),
		Responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siphon_sip_responses_total", Help: "SIP responses sent, by role, method and status code.",
		}, []string{"role", "method", "code"}),
		BusRoundTrip: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "siphon_bus_roundtrip_seconds",
			Help:    "Edge to role and back: publish of a request to its final response, by role and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"role", "method"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siphon_edge_dropped_total", Help: "Input the edge dropped without a response, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.Requests, m.Responses, m.BusRoundTrip, m.Dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Gauge registers a gauge read at scrape time, such as a connection state (1 up, 0 down).
func (m *Metrics) Gauge(name, help string, read func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, read))
}

// Code is a status code as a label value without an allocation for common codes.
func Code(code int) string {
	if code >= 100 && code < 700 {
		return codes[code-100]
	}
	return strconv.Itoa(code)
}

var codes = func() []string {
	out := make([]string, 600)
	for i := range out {
		out[i] = strconv.Itoa(i + 100)
	}
	return out
}()

// Health holds the readiness checks of a process.
type Health struct {
	mu     sync.Mutex
	checks map[string]func(context.Context) error
}

// NewHealth returns an empty set of checks: ready until a check says otherwise.
func NewHealth() *Health { return &Health{checks: map[string]func(context.Context) error{}} }

// Check adds a named readiness check.
func (h *Health) Check(name string, check func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
}

// Ready runs every check; the error lists those that failed.
func (h *Health) Ready(ctx context.Context) error {
	h.mu.Lock()
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	checks := h.checks
	h.mu.Unlock()
	sort.Strings(names)
	var failed []string
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			failed = append(failed, n+": "+err.Error())
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// Serve listens on bind and serves /metrics, /healthz, /readyz and
// /debug/pprof until ctx ends.
// It returns the bound address (useful with port 0).
func Serve(ctx context.Context, bind string, m *Metrics, h *Health, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return "", fmt.Errorf("obs: listen %s: %w", bind, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		cctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := h.Ready(cctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	// Profiles, for finding where a lab's CPU goes (bench/ uses them).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	return ln.Addr().String(), nil
}
