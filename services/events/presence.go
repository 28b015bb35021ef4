package events

import (
	"context"
	"fmt"
	"html"
	"strings"

	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// A package makes the body of a NOTIFY from the state it watches.
type eventPackage struct {
	body func(ctx context.Context, e *Events, s *store.Subscription) (body []byte, contentType string, err error)
}

const presence = "presence"

// packages are the event packages this notifier serves.
var packages = map[string]*eventPackage{
	presence:  {body: presenceBody},
	reg:       {body: regBody},
	dialogPkg: {body: dialogBody},
}

func allowEvents() string { return strings.Join(wire.EventPackages, ", ") }

// presenceBody is RFC 3863 PIDF from the registrations (RFC 3856 §6.8 lets a
// presence agent use them): open while the resource has a binding, closed
// without one.
func presenceBody(ctx context.Context, e *Events, s *store.Subscription) ([]byte, string, error) {
	bs, err := e.loc.Lookup(ctx, s.Resource, e.clock.Now())
	if err != nil {
		return nil, "", fmt.Errorf("events: presence of %s: %w", s.Resource, err)
	}
	basic := "closed"
	if len(bs) > 0 {
		basic = "open"
	}
	body := `<?xml version="1.0" encoding="UTF-8"?>` + "\r\n" +
		`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="` + html.EscapeString(s.Resource) + `">` + "\r\n" +
		`  <tuple id="reg"><status><basic>` + basic + `</basic></status></tuple>` + "\r\n" +
		`</presence>` + "\r\n"
	return []byte(body), "application/pidf+xml", nil
}
