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

// UAS is one replica of the role. It serves the mode each request's edge
// announces (Siphon-Mode), so one set of uas replicas behind edges of any mode
// behaves as that mode; its own --mode applies when an edge does not say.
type UAS struct {
	cfg       Config
	mode      mode.Mode
	allow     map[string]string // mode name → Allow
	userAgent string
	ids       *ids.Generator
	log       *slog.Logger
	metrics   *obs.Metrics
	svc       *sipbus.Service
}

// New makes the role for mode md.
func New(cfg Config, md mode.Mode, userAgent string, m *obs.Metrics, log *slog.Logger) *UAS {
	allow := map[string]string{}
	for _, name := range mode.Names() {
		m, _ := mode.Lookup(name)
		allow[name] = m.Allow()
	}
	return &UAS{
		cfg: cfg, mode: md, allow: allow, userAgent: userAgent, metrics: m,
		ids: ids.FromEnv(mode.RoleUAS), log: log.With("role", mode.RoleUAS),
	}
}

// allowFor is the Allow header of the mode r's edge runs.
func (u *UAS) allowFor(r *sipbus.Request) string {
	if a, ok := u.allow[r.Mode]; ok {
		return a
	}
	return u.mode.Allow()
}

// Handlers maps every method any mode routes to this role to its handler (the
// edge only sends what its mode routes here). A method whose handler is not
// built yet is answered 501, so a client learns that rather than a misleading
// 503 "no role running".
func (u *UAS) Handlers() map[string]sipbus.Handler {
	own := map[string]sipbus.Handler{
		"OPTIONS": u.options,
		"ACK":     func(*sipbus.Request) {}, // never answered
	}
	out := map[string]sipbus.Handler{}
	for _, name := range mode.Names() {
		m, _ := mode.Lookup(name)
		for _, r := range m.Routes {
			if r.Role != mode.RoleUAS {
				continue
			}
			if h, ok := own[r.Method]; ok {
				out[r.Method] = h
			} else {
				out[r.Method] = u.notImplemented
			}
		}
	}
	return out
}

// Start joins the bus.
func (u *UAS) Start(nc *nats.Conn) error {
	// The uas answers from memory and never waits: inline is cheapest.
	svc, err := sipbus.Serve(nc, mode.RoleUAS, u.Handlers(), sipbus.Options{}, u.metrics, u.log)
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
