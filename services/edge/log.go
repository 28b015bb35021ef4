package edge

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/siphon-lab/siphon/pkg/obs"
)

// sipLogger gives sipgo a logger that counts what sipgo drops because it cannot
// parse it (a stream whose framing is lost is closed by sipgo), and logs those at
// debug: one malformed flood must not drown the log.
func sipLogger(log *slog.Logger, m *obs.Metrics) *slog.Logger {
	return slog.New(&sipgoHandler{Handler: log.Handler(), unparseable: m.Dropped.WithLabelValues("unparseable")})
}

type sipgoHandler struct {
	slog.Handler
	unparseable prometheus.Counter
	// caller is sipgo's "caller" attributes joined: each of its layers adds
	// one (TransportLayer, then Transport<UDP>), and a key must come once.
	caller string
}

func (h *sipgoHandler) Enabled(ctx context.Context, level slog.Level) bool {
	// Parse failures are logged by sipgo at error level; they must reach Handle to be counted.
	return level >= slog.LevelError || h.Handler.Enabled(ctx, level)
}

func (h *sipgoHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "failed to parse" {
		h.unparseable.Inc()
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	if h.caller != "" {
		r.AddAttrs(slog.String("caller", h.caller))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *sipgoHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	caller, rest := h.caller, make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		if a.Key != "caller" {
			rest = append(rest, a)
		} else if caller == "" {
			caller = a.Value.String()
		} else {
			caller += "/" + a.Value.String()
		}
	}
	return &sipgoHandler{Handler: h.Handler.WithAttrs(rest), unparseable: h.unparseable, caller: caller}
}

func (h *sipgoHandler) WithGroup(name string) slog.Handler {
	return &sipgoHandler{Handler: h.Handler.WithGroup(name), unparseable: h.unparseable, caller: h.caller}
}
