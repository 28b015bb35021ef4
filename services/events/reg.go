package events

import (
	"context"
	"fmt"
	"html"
	"strconv"
	"strings"

	"github.com/siphon-lab/siphon/pkg/store"
)

const reg = "reg"

// regBody is RFC 3680 reginfo, full state, from the location store: the
// address-of-record's registration (active while it has a binding, init
// without), each binding a contact with its expiry. version counts this
// subscription's NOTIFYs from 0 (§5.2).
func regBody(ctx context.Context, e *Events, s *store.Subscription) ([]byte, string, error) {
	now := e.clock.Now()
	bs, err := e.loc.Lookup(ctx, s.Resource, now)
	if err != nil {
		return nil, "", fmt.Errorf("events: registrations of %s: %w", s.Resource, err)
	}
	state := "init"
	if len(bs) > 0 {
		state = "active"
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\r\n")
	b.WriteString(`<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="` + strconv.FormatInt(max(0, s.BodyVersion-1), 10) + `" state="full">` + "\r\n")
	b.WriteString(`  <registration aor="` + html.EscapeString(s.Resource) + `" id="r0" state="` + state + `">` + "\r\n")
	for i, bd := range bs {
		expires := int(bd.Expires.Sub(now).Seconds())
		b.WriteString(`    <contact id="c` + strconv.Itoa(i) + `" state="active" event="registered" expires="` + strconv.Itoa(max(0, expires)) + `">` +
			`<uri>` + html.EscapeString(bd.Contact) + `</uri></contact>` + "\r\n")
	}
	b.WriteString("  </registration>\r\n</reginfo>\r\n")
	return []byte(b.String()), "application/reginfo+xml", nil
}
