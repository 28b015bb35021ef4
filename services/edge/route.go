package edge

import (
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
}

// buildRoutes turns the mode's table (pkg/mode) into the edge's method → route map.
func buildRoutes(md mode.Mode, m *obs.Metrics) map[string]*route {
	routes := make(map[string]*route, len(md.Routes))
	for _, r := range md.Routes {
		routes[r.Method] = &route{
			role:      r.Role,
			subject:   wire.SIPRequest(r.Role, r.Method),
			requests:  m.Requests.WithLabelValues(mode.RoleEdge, r.Method),
			roundTrip: m.BusRoundTrip.WithLabelValues(r.Role, r.Method),
		}
	}
	return routes
}
