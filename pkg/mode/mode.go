// Package mode holds siphond's modes as data: for each mode, which SIP methods it
// serves and which role serves each one. The edge routes by this table, and the
// uas role builds its Allow header from it, so the two cannot disagree.
package mode

import (
	"fmt"
	"slices"
	"strings"

	"github.com/siphon-lab/siphon/pkg/wire"
)

// Role names (wire.Role*), as used by --role and in bus subjects.
const (
	RoleEdge      = wire.RoleEdge
	RoleRegistrar = wire.RoleRegistrar
	RoleProxy     = wire.RoleProxy
	RoleB2BUA     = wire.RoleB2BUA
	RoleUAS       = wire.RoleUAS
	RoleEvents    = wire.RoleEvents
)

// Roles lists every role name in the order processes start them.
var Roles = []string{RoleEdge, RoleRegistrar, RoleProxy, RoleB2BUA, RoleUAS, RoleEvents}

// Route is one row of the table: a method and the role that serves it.
type Route struct {
	Method string
	Role   string
}

// Mode is one siphond mode.
type Mode struct {
	Name   string
	Routes []Route
	// UserRoutes take a method whose Request-URI names a user (sip:bob@…) from
	// its row in Routes: in proxy mode an OPTIONS for bob is bob's to answer
	// (the proxy forwards it), one for the lab itself the uas's.
	UserRoutes []Route
}

// The modes, one row per method. CANCEL is listed where INVITE is: the edge
// answers it and tells the role that holds the INVITE.
var modes = []Mode{
	{Name: "minimal", Routes: []Route{
		{"OPTIONS", RoleUAS},
	}},
	{Name: "full-uas", Routes: []Route{
		{"OPTIONS", RoleUAS}, {"INVITE", RoleUAS}, {"ACK", RoleUAS}, {"BYE", RoleUAS}, {"CANCEL", RoleUAS},
		{"REGISTER", RoleRegistrar}, {"SUBSCRIBE", RoleEvents}, {"NOTIFY", RoleEvents}, {"PUBLISH", RoleEvents}, {"REFER", RoleUAS},
		{"PRACK", RoleUAS}, {"MESSAGE", RoleUAS}, {"INFO", RoleUAS}, {"UPDATE", RoleUAS},
	}},
	{Name: "registrar", Routes: []Route{
		{"OPTIONS", RoleUAS}, {"REGISTER", RoleRegistrar},
	}},
	// The proxy forwards every method but REGISTER (the registrar's) and
	// OPTIONS addressed to the lab itself (the uas answers for the proxy).
	{Name: "proxy", UserRoutes: []Route{{"OPTIONS", RoleProxy}}, Routes: []Route{
		{"OPTIONS", RoleUAS}, {"REGISTER", RoleRegistrar}, {"INVITE", RoleProxy}, {"ACK", RoleProxy},
		{"BYE", RoleProxy}, {"CANCEL", RoleProxy}, {"PRACK", RoleProxy}, {"UPDATE", RoleProxy},
		{"INFO", RoleProxy}, {"MESSAGE", RoleProxy}, {"REFER", RoleProxy}, {"NOTIFY", RoleProxy},
		{"SUBSCRIBE", RoleProxy},
	}},
	{Name: "b2bua", Routes: []Route{
		{"OPTIONS", RoleUAS}, {"REGISTER", RoleRegistrar}, {"INVITE", RoleB2BUA}, {"ACK", RoleB2BUA},
		{"BYE", RoleB2BUA}, {"CANCEL", RoleB2BUA}, {"PRACK", RoleB2BUA}, {"UPDATE", RoleB2BUA}, {"INFO", RoleB2BUA},
		{"MESSAGE", RoleB2BUA}, {"REFER", RoleB2BUA},
	}},
	{Name: "call-server", Routes: []Route{
		{"OPTIONS", RoleUAS}, {"INVITE", RoleUAS}, {"ACK", RoleUAS}, {"BYE", RoleUAS}, {"CANCEL", RoleUAS},
		{"PRACK", RoleUAS}, {"INFO", RoleUAS}, {"UPDATE", RoleUAS},
	}},
	{Name: "subscription-server", Routes: []Route{
		{"OPTIONS", RoleUAS}, {"SUBSCRIBE", RoleEvents}, {"NOTIFY", RoleEvents}, {"PUBLISH", RoleEvents},
	}},
}

// Scenario is the mode of `siphond run`'s edge: every request it gets goes
// to the scenario. It is not among the modes --mode takes.
var Scenario = func() Mode {
	m := Mode{Name: "scenario"}
	for _, method := range []string{"OPTIONS", "INVITE", "ACK", "BYE", "REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH",
		"REFER", "PRACK", "MESSAGE", "INFO", "UPDATE"} {
		m.Routes = append(m.Routes, Route{method, wire.RoleScenario})
	}
	return m
}()

// Names lists the mode names.
func Names() []string {
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = m.Name
	}
	return names
}

// Lookup finds a mode by name.
func Lookup(name string) (Mode, error) {
	for _, m := range modes {
		if m.Name == name {
			return m, nil
		}
	}
	return Mode{}, fmt.Errorf("unknown mode %q (want one of %s)", name, strings.Join(Names(), ", "))
}

// Methods lists the methods the mode serves, in table order.
func (m Mode) Methods() []string {
	out := make([]string, len(m.Routes))
	for i, r := range m.Routes {
		out[i] = r.Method
	}
	return out
}

// Allow is the mode's Allow header value.
func (m Mode) Allow() string {
	return strings.Join(m.Methods(), ", ")
}

// RoleForUser returns the role that serves method when its Request-URI names
// a user, if it is not RoleFor's.
func (m Mode) RoleForUser(method string) (string, bool) {
	for _, r := range m.UserRoutes {
		if r.Method == method {
			return r.Role, true
		}
	}
	return "", false
}

// RoleFor returns the role that serves method, and false when the mode does not serve it.
func (m Mode) RoleFor(method string) (string, bool) {
	for _, r := range m.Routes {
		if r.Method == method {
			return r.Role, true
		}
	}
	return "", false
}

// Roles lists the roles the mode needs besides the edge, in start order.
func (m Mode) Roles() []string {
	var out []string
	for _, role := range Roles {
		served := func(r Route) bool { return r.Role == role }
		if slices.ContainsFunc(m.Routes, served) || slices.ContainsFunc(m.UserRoutes, served) {
			out = append(out, role)
		}
	}
	return out
}
