// Package uas is the user agent server role: it answers the requests a mode sends
// to it (OPTIONS in every mode; calls in full-uas and call-server).
package uas

import (
	"log/slog"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
)

// UAS is one replica of the role.
type UAS struct {
	cfg       Config
	mode      mode.Mode
	userAgent string
	ids       *ids.Generator
	log       *slog.Logger
	metrics   *obs.Metrics
	svc       *sipbus.Service
}

// New makes the role for mode md.
func New(cfg Config, md mode.Mode, userAgent string, m *obs.Metrics, log *slog.Logger) *UAS {
	return &UAS{
		cfg: cfg, mode: md, userAgent: userAgent, metrics: m,
		ids: ids.FromEnv(mode.RoleUAS), log: log.With("role", mode.RoleUAS),
	}
}

// Handlers maps every method the mode routes to this role to its handler. A
// method whose handler is not built yet is answered 501, so a client learns that
// rather than a misleading 503 "no role running".
func (u *UAS) Handlers() map[string]sipbus.Handler {
	own := map[string]sipbus.Handler{
		"OPTIONS": u.options,
		"ACK":     func(*sipbus.Request) {}, // never answered
	}
	out := map[string]sipbus.Handler{}
	for _, r := range u.mode.Routes {
		if r.Role != mode.RoleUAS {
			continue
		}
		if h, ok := own[r.Method]; ok {
			out[r.Method] = h
		} else {
			out[r.Method] = u.notImplemented
		}
	}
	return out
}

// Start joins the bus.
func (u *UAS) Start(nc *nats.Conn) error {
	svc, err := sipbus.Serve(nc, mode.RoleUAS, u.Handlers(), u.metrics, u.log)
	if err != nil {
		return err
	}
	u.svc = svc
	return nil
}

// Stop leaves the bus.
func (u *UAS) Stop() error {
	if u.svc == nil {
		return nil
	}
	return u.svc.Stop()
}

// respond sends res and logs a failure once, here at the top of the role.
func (u *UAS) respond(r *sipbus.Request, res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Server", u.userAgent))
	if err := r.Respond(res); err != nil {
		u.log.Warn("respond failed", "error", err)
	}
}

func (u *UAS) notImplemented(r *sipbus.Request) {
	res := sipmsg.NewResponse(r.Request, 501, "Not Implemented", nil, u.ids)
	res.AppendHeader(sipmsg.Warning("siphon-uas", "the uas role does not implement "+string(r.Method)+" yet"))
	u.respond(r, res)
}
