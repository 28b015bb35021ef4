package edge

import (
	"github.com/emiago/sipgo/sip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// route is one row of the mode's table, with what the hot path needs computed once.
type route struct {
	role      string
	subject   string
	requests  prometheus.Counter
	roundTrip prometheus.Observer
	// forUser, when set, serves the requests whose Request-URI names a user
	// (mode.UserRoutes).
	forUser *route
}

// buildRoutes turns the mode's table (pkg/mode) into the edge's method → route map.
func buildRoutes(md mode.Mode, m *obs.Metrics) map[string]*route {
	routes := make(map[string]*route, len(md.Routes))
	build := func(r mode.Route) *route {
		return &route{
			role:      r.Role,
			subject:   wire.SIPRequest(r.Role, r.Method),
			requests:  m.Requests.WithLabelValues(mode.RoleEdge, r.Method),
			roundTrip: m.BusRoundTrip.WithLabelValues(r.Role, r.Method),
		}
	}
	for _, r := range md.Routes {
		routes[r.Method] = build(r)
	}
	for _, r := range md.UserRoutes {
		if main, ok := routes[r.Method]; ok {
			main.forUser = build(r)
		}
	}
	return routes
}

// to is the route of req: the user route when its Request-URI names a user.
func (r *route) to(req *sip.Request) *route {
	if r.forUser != nil && req.Recipient.User != "" {
		return r.forUser
	}
	return r
}
