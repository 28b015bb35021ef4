// Package uas is the user agent server role: it answers the requests a mode sends
// to it (OPTIONS in every mode; calls in full-uas and call-server). Dialogs live
// in the store, so any replica serves any request inside any dialog; only an
// INVITE that is still ringing belongs to the replica that took it, and the
// edge and other replicas reach that one by its replica subject.
package uas

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// workers: handlers wait on the store (Redis), so they run on a pool.
const workers = 256

// storeTimeout bounds one handler's store work.
const storeTimeout = 5 * time.Second

// sweepEvery is how often each replica looks for dialogs that are due.
const sweepEvery = 250 * time.Millisecond

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
	caps      Capabilities
	// supportedTags are the option tags this configuration implements;
	// supported is them as a Supported header value.
	supportedTags []string
	supported     string
	dialogs       store.Dialogs
	now           func() time.Time

	replica  string // this replica's id, on every response as Siphon-Replica
	nc       *nats.Conn
	streamer *bus.Streamer
	svc      *sipbus.Service
	sub      *nats.Subscription
	ringing  sync.Map // ringKey → *call: INVITEs this replica holds
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New makes the role for mode md, keeping dialogs in backend.
func New(cfg Config, md mode.Mode, backend store.Backend, userAgent string, m *obs.Metrics, log *slog.Logger) (*UAS, error) {
	caps, err := LoadCapabilities(cfg.SDPProfile)
	if err != nil {
		return nil, fmt.Errorf("uas: %w", err)
	}
	allow := map[string]string{}
	for _, name := range mode.Names() {
		m, _ := mode.Lookup(name)
		allow[name] = m.Allow()
	}
	gen := ids.FromEnv(mode.RoleUAS)
	return &UAS{
		cfg: cfg, mode: md, allow: allow, userAgent: userAgent, metrics: m, caps: caps,
		supportedTags: supportedTags(cfg), supported: strings.Join(supportedTags(cfg), ", "),
		dialogs: backend.Dialogs(), now: time.Now, ids: gen, replica: gen.Tag(),
		log: log.With("role", mode.RoleUAS),
	}, nil
}

// allowFor is the Allow header of the mode r's edge runs.
func (u *UAS) allowFor(r *sipbus.Request) string {
	if a, ok := u.allow[r.Mode]; ok {
		return a
	}
	return u.mode.Allow()
}

// Handlers maps each method the role serves to its handler (the edge only sends
// what its mode routes here). CANCEL is not among them: the edge answers it and
// passes it to the replica holding the INVITE (fromReplicaSubject).
func (u *UAS) Handlers() map[string]sipbus.Handler {
	return map[string]sipbus.Handler{
		"OPTIONS": u.options,
		"INVITE":  u.invite,
		"ACK":     u.ack,
		"BYE":     u.bye,
		"PRACK":   u.prack,
		"UPDATE":  u.update,
		"INFO":    u.info,
		"MESSAGE": u.message,
		"REFER":   u.refer,
	}
}

// Start joins the bus: the role's queue group, this replica's own subject, and
// the sweep that acts on due dialogs.
func (u *UAS) Start(nc *nats.Conn) error {
	if u.cfg.EnableSessionTimers && u.cfg.MinSE < 90 {
		u.log.Warn("--min-se is below RFC 4028's 90 seconds: fine for tests, not for interop", "min_se", u.cfg.MinSE)
	}
	u.nc = nc
	st, err := bus.NewStreamer(nc)
	if err != nil {
		return fmt.Errorf("uas: %w", err)
	}
	u.streamer = st
	u.sub, err = nc.Subscribe(wire.Replica(mode.RoleUAS, u.replica), u.fromReplicaSubject)
	if err != nil {
		return fmt.Errorf("uas: subscribe replica subject: %w", err)
	}
	svc, err := sipbus.Serve(nc, mode.RoleUAS, u.Handlers(), sipbus.Options{Workers: workers, Replica: u.replica}, u.metrics, u.log)
	if err != nil {
		return err
	}
	u.svc = svc
	u.stop = make(chan struct{})
	u.wg.Add(1)
	go u.sweep()
	return nil
}

// Stop leaves the bus.
func (u *UAS) Stop() error {
	if u.svc == nil {
		return nil
	}
	close(u.stop)
	u.wg.Wait()
	_ = u.sub.Unsubscribe()
	_ = u.streamer.Close()
	return u.svc.Stop()
}

// respond sends res and logs a failure once, here at the top of the role.
func (u *UAS) respond(r *sipbus.Request, res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Server", u.userAgent))
	if err := r.Respond(res); err != nil {
		u.log.Warn("respond failed", "error", err)
	}
}

// reply answers r with a response of its own making; detail, when set, goes in
// a Warning so the sender learns exactly what was wrong.
func (u *UAS) reply(r *sipbus.Request, code int, reason, detail string, hdrs ...sip.Header) {
	res := sipmsg.NewResponse(r.Request, code, reason, nil, u.ids)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if detail != "" {
		res.AppendHeader(sipmsg.Warning("siphon-uas", detail))
	}
	u.respond(r, res)
}

func (u *UAS) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

// Events the uas publishes on siphon.v1.event.uas.<name>.
const (
	EventCallStarted      = "call.started"
	EventCallEnded        = "call.ended"
	EventCallCancelled    = "call.cancelled"
	EventCallReplaced     = "call.replaced"
	EventAnswered         = "call.answered" // the ACK brought the answer to a late offer
	EventDialogExpired    = "dialog.expired"
	EventSessionRefreshed = "session.refreshed"
	EventSessionExpired   = "session.expired"
	EventInfo             = "info.received"
	EventMessage          = "message.received"
	EventReferNotify      = "refer.notify"
)

// Event is the JSON payload of a uas event.
type Event struct {
	Event     string `json:"event"`
	CallID    string `json:"call_id"`
	LocalTag  string `json:"local_tag,omitempty"`
	RemoteTag string `json:"remote_tag,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	// ContentType and Body are the request's (INFO, MESSAGE) or the sipfrag a
	// NOTIFY carried (refer.notify).
	ContentType string    `json:"content_type,omitempty"`
	Body        string    `json:"body,omitempty"`
	InfoPackage string    `json:"info_package,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Replica     string    `json:"replica"`
	At          time.Time `json:"at"`
}

// announce publishes ev; a failure is logged, never fatal to the call.
func (u *UAS) announce(ev Event) {
	if u.nc == nil {
		return // not on a bus: handler tests
	}
	ev.Replica, ev.At = u.replica, u.now()
	data, err := json.Marshal(ev)
	if err == nil {
		err = u.nc.Publish(wire.Event(mode.RoleUAS, ev.Event), data)
	}
	if err != nil {
		u.log.Warn("event not published", "event", ev.Event, "error", err)
	}
}

// dialogEvent is an event about d.
func dialogEvent(name string, d *store.Dialog) Event {
	return Event{Event: name, CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: d.RemoteTag, From: d.RemoteURI, To: d.LocalURI}
}
