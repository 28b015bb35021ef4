package uac

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipmsg"
)

// Dialog is what a request inside a dialog is built from (RFC 3261 §12.2.1.1).
// Roles keep it in their own stores; this is the view the builder needs.
type Dialog struct {
	CallID string
	// LocalURI and RemoteURI are name-addrs without tags: this side's From and
	// the peer's To in the requests this side sends.
	LocalURI, LocalTag   string
	RemoteURI, RemoteTag string // RemoteTag is empty for an initial INVITE
	// RemoteTarget is the peer's Contact URI.
	RemoteTarget string
	// RouteSet is the route set in the order requests visit it: a UAS's is the
	// Record-Route values as they came, a UAC's the reverse (§12.1.2).
	RouteSet []string
	// Contact is this side's Contact URI.
	Contact string
	// UserAgent, when set, is the User-Agent header.
	UserAgent string
}

// Request builds a request of method inside d with CSeq cseq and body (sent as
// contentType when not empty). The edge adds its Via. The route set decides
// the Request-URI and Route (§12.2.1.1): a first route with ;lr routes loosely
// (Request-URI = remote target, Route = the set); without it, strictly
// (Request-URI = that route, Route = the rest and then the remote target).
func (d Dialog) Request(method sip.RequestMethod, cseq uint32, contentType string, body []byte) (*sip.Request, error) {
	target := d.RemoteTarget
	routes := d.RouteSet
	if len(routes) > 0 {
		first, err := RouteURI(routes[0])
		if err != nil {
			return nil, err
		}
		if !first.UriParams.Has("lr") {
			// Strict routing: the first route becomes the Request-URI, stripped of
			// what a Request-URI may not carry, and the remote target the last Route.
			first.Headers = nil
			target = first.String()
			routes = append(append([]string{}, routes[1:]...), "<"+d.RemoteTarget+">")
		}
	}
	var ruri sip.Uri
	if err := sip.ParseUri(strings.Trim(target, "<>"), &ruri); err != nil {
		return nil, fmt.Errorf("uac: remote target %q: %w", target, err)
	}
	req := sip.NewRequest(method, ruri)
	for _, r := range routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	mf := sip.MaxForwardsHeader(sipmsg.DefaultMaxForwards)
	req.AppendHeader(&mf)
	from, err := address(d.LocalURI, d.LocalTag)
	if err != nil {
		return nil, fmt.Errorf("uac: local URI: %w", err)
	}
	req.AppendHeader(&sip.FromHeader{DisplayName: from.name, Address: from.uri, Params: from.params})
	to, err := address(d.RemoteURI, d.RemoteTag)
	if err != nil {
		return nil, fmt.Errorf("uac: remote URI: %w", err)
	}
	req.AppendHeader(&sip.ToHeader{DisplayName: to.name, Address: to.uri, Params: to.params})
	callID := sip.CallIDHeader(d.CallID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	if d.Contact != "" && method != sip.ACK && method != sip.CANCEL {
		req.AppendHeader(sip.NewHeader("Contact", "<"+d.Contact+">"))
	}
	if d.UserAgent != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", d.UserAgent))
	}
	if len(body) > 0 && contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody(body) // sets Content-Length, also 0
	return req, nil
}

// RouteURI parses a route set entry (a Route or Record-Route value), <uri>
// with or without parameters after it.
func RouteURI(entry string) (sip.Uri, error) {
	var u sip.Uri
	v := strings.TrimSpace(entry)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	}
	if err := sip.ParseUri(v, &u); err != nil {
		return u, fmt.Errorf("uac: route %q: %w", entry, err)
	}
	return u, nil
}

type nameAddr struct {
	name   string
	uri    sip.Uri
	params sip.HeaderParams
}

// address parses a name-addr and sets its tag (none when tag is empty).
func address(v, tag string) (nameAddr, error) {
	a := nameAddr{params: sip.NewParams()}
	name, err := sip.ParseAddressValue(v, &a.uri, &a.params)
	if err != nil {
		return a, fmt.Errorf("%q: %w", v, err)
	}
	a.name = name
	if tag != "" {
		a.params.Add("tag", tag)
	}
	return a, nil
}
