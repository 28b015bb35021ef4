package events

import (
	"context"
	"encoding/json"
	"html"
	"strconv"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

const dialogPkg = "dialog"

// dialogInfo is RFC 4235 dialog-info: the initial NOTIFY is full state with
// no dialog (the store keeps no index of calls by party), each call the uas
// answers or ends then a partial one (§4.1, state="partial"). version counts
// this subscription's NOTIFYs from 0.
func dialogInfo(s *store.Subscription, state string, dlg []byte) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\r\n" +
		`<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="` + strconv.FormatInt(max(0, s.BodyVersion-1), 10) +
		`" state="` + state + `" entity="` + html.EscapeString(s.Resource) + `">` + "\r\n" + string(dlg) + "</dialog-info>\r\n")
}

func dialogBody(_ context.Context, _ *Events, s *store.Subscription) ([]byte, string, error) {
	return dialogInfo(s, "full", nil), "application/dialog-info+xml", nil
}

// callChanged notifies the dialog watchers of the party a call of the uas
// was to: confirmed when it was answered, terminated when it ended.
func (e *Events) callChanged(m *nats.Msg) {
	var ev wire.CallEvent
	if json.Unmarshal(m.Data, &ev) != nil {
		return
	}
	state := ""
	switch ev.Event {
	case wire.EventCallStarted:
		state = "confirmed"
	case wire.EventCallEnded, wire.EventCallCancelled:
		state = "terminated"
	default:
		return
	}
	var to sip.ToHeader
	if _, err := sip.ParseAddressValue(ev.To, &to.Address, &to.Params); err != nil {
		return
	}
	aor, _, err := sipmsg.AddressOfRecord(to.Address)
	if err != nil {
		return
	}
	dlg := []byte(`  <dialog id="` + html.EscapeString(ev.CallID+";"+ev.LocalTag) + `" call-id="` + html.EscapeString(ev.CallID) +
		`" local-tag="` + html.EscapeString(ev.LocalTag) + `" remote-tag="` + html.EscapeString(ev.RemoteTag) +
		`" direction="recipient"><state>` + state + "</state></dialog>\r\n")
	e.enqueue(func() {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		e.notifyWatchersWith(ctx, dialogPkg, aor, func(s *store.Subscription) ([]byte, string) {
			return dialogInfo(s, "partial", dlg), "application/dialog-info+xml"
		})
	})
}
