package scenario

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/bus"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// Serve is the scenario role on an actor's own bus: every request its edge
// gets (mode.Scenario) into inbox, a CANCEL too (the edge passes it to the
// replica holding the INVITE). What no call takes is answered here: 481 in
// a dialog no call holds, 480 for a new request nobody will take.
func Serve(nc *nats.Conn, inbox *Inbox, replica string, gen *ids.Generator, metrics *obs.Metrics, log *slog.Logger) (stop func(context.Context) error, err error) {
	handlers := map[string]sipbus.Handler{}
	for _, method := range mode.Scenario.Methods() {
		handlers[method] = func(r *sipbus.Request) {
			if inbox.Deliver(r) || r.Method == sip.ACK {
				return
			}
			code, reason, why := 480, "Temporarily Unavailable", "more requests than the scenario's calls take"
			if r.To() != nil && r.To().Params.Has("tag") {
				code, reason, why = 481, "Call/Transaction Does Not Exist", "no call of the scenario holds this dialog"
			}
			if err := r.Respond(sipmsg.Refusal(r.Request, code, reason, "siphon-scenario", why, gen)); err != nil {
				log.Warn("scenario: respond failed", "error", err)
			}
		}
	}
	sub, err := nc.Subscribe(wire.Replica(wire.RoleScenario, replica), func(m *nats.Msg) {
		if bus.AnswerProbe(m) {
			return // the edge checking this replica still holds its ringing INVITEs
		}
		if msg, err := sip.ParseMessage(m.Data); err == nil {
			if req, ok := msg.(*sip.Request); ok && req.Method == sip.CANCEL && req.CallID() != nil {
				inbox.Deliver(&sipbus.Request{Request: req, Tx: m.Header.Get(wire.HdrTx)})
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("scenario: subscribe replica subject: %w", err)
	}
	svc, err := sipbus.Serve(nc, wire.RoleScenario, handlers, sipbus.Options{Replica: replica}, metrics, log)
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return func(ctx context.Context) error {
		_ = sub.Unsubscribe()
		return svc.Stop(ctx)
	}, nil
}
