package events

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"

	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// A package makes the body of a NOTIFY from the state it watches; one that
// takes PUBLISH says how its state is published.
type eventPackage struct {
	body    func(ctx context.Context, e *Events, s *store.Subscription) (body []byte, contentType string, err error)
	publish *publication
}

// publication is how a package's state comes in a PUBLISH.
type publication struct {
	contentType string
	// check refuses a body that is not the package's state (400).
	check func(body []byte) error
}

const presence = "presence"

// packages are the event packages this notifier serves.
var packages = map[string]*eventPackage{
	presence:       {body: presenceBody, publish: &publication{contentType: "application/pidf+xml", check: checkPIDF}},
	reg:            {body: regBody},
	dialogPkg:      {body: dialogBody},
	messageSummary: {body: summaryBody, publish: &publication{contentType: summaryType, check: checkSummary}},
}

func packageNames() []string {
	names := make([]string, 0, len(packages))
	for name := range packages {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func allowEvents() string { return strings.Join(wire.EventPackages, ", ") }

// presenceBody is the newest PIDF published for the resource (RFC 3903) or,
// without one, RFC 3863 PIDF from the registrations (RFC 3856 §6.8 lets a
// presence agent use them): open while the resource has a binding, closed
// without one.
func presenceBody(ctx context.Context, e *Events, s *store.Subscription) ([]byte, string, error) {
	p, err := e.published(ctx, presence, s.Resource)
	if err != nil {
		return nil, "", fmt.Errorf("events: publications of %s: %w", s.Resource, err)
	}
	if p != nil {
		return []byte(p.Body), p.ContentType, nil
	}
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

// checkPIDF takes a well-formed XML document whose root is RFC 3863's
// <presence> in the PIDF namespace.
func checkPIDF(body []byte) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	rooted := false
	for {
		tok, err := d.Token()
		switch {
		case errors.Is(err, io.EOF) && rooted:
			return nil
		case errors.Is(err, io.EOF):
			return errors.New("no root element")
		case err != nil:
			return fmt.Errorf("not well-formed XML: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok && !rooted {
			if se.Name.Local != "presence" || se.Name.Space != "urn:ietf:params:xml:ns:pidf" {
				return fmt.Errorf("root element {%s}%s, want {urn:ietf:params:xml:ns:pidf}presence", se.Name.Space, se.Name.Local)
			}
			rooted = true
		}
	}
}
