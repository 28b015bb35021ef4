package uas

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// accept is what bodies siphon understands (RFC 3261 §11.2).
const accept = "application/sdp"

// options answers OPTIONS with the capabilities of the running mode: Allow is
// exactly the methods the mode serves (RFC 3261 §11.2).
func (u *UAS) options(r *sipbus.Request) {
	res := sipmsg.NewResponse(r.Request, 200, "OK", nil, u.ids)
	res.AppendHeader(sip.NewHeader("Allow", u.allowFor(r)))
	res.AppendHeader(sip.NewHeader("Accept", accept))
	if u.callsIn(r) && u.supported != "" {
		// No extension outside calls: no Supported header, rather than an empty one.
		res.AppendHeader(sip.NewHeader("Supported", u.supported))
	}
	if u.eventsIn(r) {
		res.AppendHeader(sip.NewHeader("Allow-Events", strings.Join(wire.EventPackages, ", ")))
	}
	u.respond(r, res)
}

// eventsIn says whether the mode r's edge runs sends SUBSCRIBE to the events
// role: then OPTIONS answers say which packages (RFC 6665 §8.2.2).
func (u *UAS) eventsIn(r *sipbus.Request) bool {
	md, err := mode.Lookup(r.Mode)
	if err != nil {
		md = u.mode
	}
	role, ok := md.RoleFor("SUBSCRIBE")
	return ok && role == mode.RoleEvents
}

// callsIn says whether the mode r's edge runs sends calls to the uas: only then
// do the call extensions it supports mean anything to the asker.
func (u *UAS) callsIn(r *sipbus.Request) bool {
	md, err := mode.Lookup(r.Mode)
	if err != nil {
		md = u.mode
	}
	role, ok := md.RoleFor("INVITE")
	return ok && role == mode.RoleUAS
}
