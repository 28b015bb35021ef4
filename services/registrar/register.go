package registrar

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/auth"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// supported are the option tags the registrar implements: Path (RFC 3327) and
// outbound (RFC 5626: instance, reg-id and the flow are kept per binding).
// supportedTags are the option tags the registrar implements (RFC 3327 Path,
// RFC 5626 outbound); supportedHeader is them as a Supported value.
var supportedTags = []string{"path", "outbound"}

var supportedHeader = strings.Join(supportedTags, ", ")

// register handles REGISTER (RFC 3261 §10.3).
func (r *Registrar) register(req *sipbus.Request) {
	ctx := context.Background()
	now := r.now()
	if !r.cfg.AutoAccept {
		r.reject(req, 403, "Forbidden", "registrations are not accepted here (--auto-accept-registrations=false)")
		return
	}
	if tags := sipmsg.Unsupported(req.Request, "Require", supportedTags); len(tags) > 0 {
		res := sipmsg.NewResponse(req.Request, 420, "Bad Extension", nil, r.ids)
		res.AppendHeader(sip.NewHeader("Unsupported", strings.Join(tags, ", ")))
		r.respond(req, res)
		return
	}
	aor, aorUser, err := addressOfRecord(req.To())
	if err != nil {
		r.reject(req, 400, "Bad Request", err.Error())
		return
	}
	if r.auth != nil && !r.authenticate(ctx, req, aorUser, now) {
		return
	}
	reg, query, res := r.registration(req, aor, now)
	if res != nil {
		r.respond(req, res)
		return
	}
	var current []store.Binding
	if query {
		current, err = r.loc.Lookup(ctx, aor, now)
	} else {
		var out store.Outcome
		out, err = r.loc.Register(ctx, reg, now)
		if err == nil {
			current = out.Current
			r.announce(wire.EventBindingAdded, out.Added)
			r.announce(wire.EventBindingRefreshed, out.Refreshed)
			r.announce(wire.EventBindingRemoved, out.Removed)
			r.announce(wire.EventBindingExpired, out.Expired)
		}
	}
	switch {
	case errors.Is(err, store.ErrOutOfOrder):
		r.reject(req, 500, "Server Internal Error", "out-of-order REGISTER: same Call-ID and a CSeq not above the stored one (RFC 3261 §10.3 step 7)")
	case err != nil:
		r.log.Error("location store failed", "aor", aor, "error", err)
		r.reject(req, 500, "Server Internal Error", "location store unavailable")
	default:
		r.respond(req, r.ok(req, current, now))
	}
}

// authenticate answers 401/403 itself and reports whether req may go on.
func (r *Registrar) authenticate(ctx context.Context, req *sipbus.Request, aorUser string, now time.Time) bool {
	user, v, err := r.auth.Check(ctx, auth.Server, req.Request, req.Remote, now, nil)
	if err != nil {
		r.log.Error("authentication store failed", "error", err)
		r.reject(req, 500, "Server Internal Error", "authentication store unavailable")
		return false
	}
	switch v {
	case auth.Locked:
		r.reject(req, 403, "Forbidden", "too many failed authentications; try again later")
		return false
	case auth.Challenge, auth.Stale:
		res := sipmsg.NewResponse(req.Request, 401, "Unauthorized", nil, r.ids)
		for _, h := range r.auth.Challenges(auth.Server, now, v == auth.Stale) {
			res.AppendHeader(h)
		}
		r.respond(req, res)
		return false
	}
	// RFC 3261 §10.3 step 3: the user may change only its own bindings.
	if user != aorUser {
		r.reject(req, 403, "Forbidden", fmt.Sprintf("%s may not register %s", user, aorUser))
		return false
	}
	return true
}

// registration turns req's contacts into changes. query is true for a REGISTER
// without Contact; res is the error answer when the request is refused.
func (r *Registrar) registration(req *sipbus.Request, aor string, now time.Time) (reg store.Registration, query bool, res *sip.Response) {
	contacts := req.GetHeaders("Contact")
	if len(contacts) == 0 {
		return reg, true, nil
	}
	cseq := req.CSeq()
	reg = store.Registration{AOR: aor, CallID: req.CallID().Value(), CSeq: cseq.SeqNo}
	headerExpiry, hasHeader := -1, false
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
		if err != nil {
			return reg, false, r.refusal(req, 400, "Bad Request", "malformed Expires header")
		}
		headerExpiry, hasHeader = int(min(n, math.MaxInt32)), true
	}
	var path []string
	for _, h := range req.GetHeaders("Path") {
		path = append(path, h.Value())
	}
	userAgent := ""
	if h := req.GetHeader("User-Agent"); h != nil {
		userAgent = h.Value()
	}
	parsed := make([]*sip.ContactHeader, 0, len(contacts))
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return reg, false, r.refusal(req, 400, "Bad Request", "malformed Contact header")
		}
		parsed = append(parsed, c)
	}
	for _, c := range parsed {
		if c.Address.Wildcard {
			// RFC 3261 §10.3 step 6: "*" only alone and only with Expires: 0.
			if len(parsed) != 1 || !hasHeader || headerExpiry != 0 {
				return reg, false, r.refusal(req, 400, "Bad Request", "Contact: * must be the only Contact and come with Expires: 0")
			}
			reg.Wildcard = true
			return reg, false, nil
		}
	}
	for _, c := range parsed {
		expiry := r.cfg.DefaultExpiry
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return reg, false, r.refusal(req, 400, "Bad Request", "malformed expires parameter in Contact")
			}
			expiry = int(min(n, math.MaxInt32))
		} else if hasHeader {
			expiry = headerExpiry
		}
		if expiry != 0 && expiry < r.cfg.MinExpiry {
			res := r.refusal(req, 423, "Interval Too Brief", "")
			res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(r.cfg.MinExpiry)))
			return reg, false, res
		}
		expiry = min(expiry, r.cfg.MaxExpiry)
		b := store.Binding{
			AOR: aor, Contact: c.Address.String(), CallID: reg.CallID, CSeq: reg.CSeq,
			Expires: now.Add(time.Duration(expiry) * time.Second), Path: path,
			Edge: req.Edge, Transport: req.Transport, Source: req.Remote, Flow: req.Flow,
			UserAgent: userAgent, Updated: now,
		}
		if b.Flow == "" {
			b.Flow = req.Transport + ":" + req.Remote
		}
		if v, ok := c.Params.Get("q"); ok {
			q, err := strconv.ParseFloat(v, 64)
			if err != nil || q < 0 || q > 1 {
				return reg, false, r.refusal(req, 400, "Bad Request", "q must be between 0 and 1")
			}
			b.Q, b.QSet = q, true
		}
		if v, ok := c.Params.Get("+sip.instance"); ok {
			b.Instance = v
		}
		if v, ok := c.Params.Get("reg-id"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return reg, false, r.refusal(req, 400, "Bad Request", "reg-id must be a positive integer")
			}
			b.RegID = n
		}
		reg.Changes = append(reg.Changes, store.Change{Binding: b, Remove: expiry == 0})
	}
	return reg, false, nil
}

// ok is the 200: every current binding with its remaining expiry, ordered by
// q, and the Date (RFC 3261 §10.3 step 8).
func (r *Registrar) ok(req *sipbus.Request, bindings []store.Binding, now time.Time) *sip.Response {
	res := sipmsg.NewResponse(req.Request, 200, "OK", nil, r.ids)
	outbound := false
	for _, b := range bindings {
		left := int(math.Ceil(b.Expires.Sub(now).Seconds()))
		v := "<" + b.Contact + ">;expires=" + strconv.Itoa(left)
		if b.QSet {
			v += ";q=" + strconv.FormatFloat(b.Q, 'f', -1, 64)
		}
		if b.Instance != "" {
			v += ";+sip.instance=" + b.Instance
		}
		if b.RegID != 0 {
			v += ";reg-id=" + strconv.Itoa(b.RegID)
			outbound = outbound || b.CallID == req.CallID().Value()
		}
		res.AppendHeader(sip.NewHeader("Contact", v))
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(http.TimeFormat)))
	// RFC 3327 §5.3: echo the Path when the UA said it supports it.
	if sipmsg.HasOptionTag(req.Request, "Supported", "path") {
		for _, h := range req.GetHeaders("Path") {
			res.AppendHeader(sip.NewHeader("Path", h.Value()))
		}
	}
	if outbound && sipmsg.HasOptionTag(req.Request, "Supported", "outbound") {
		res.AppendHeader(sip.NewHeader("Require", "outbound"))
	}
	res.AppendHeader(sip.NewHeader("Supported", supportedHeader))
	return res
}

func (r *Registrar) refusal(req *sipbus.Request, code int, reason, detail string) *sip.Response {
	return sipmsg.Refusal(req.Request, code, reason, "siphon-registrar", detail, r.ids)
}

func (r *Registrar) reject(req *sipbus.Request, code int, reason, detail string) {
	r.respond(req, r.refusal(req, code, reason, detail))
}

// addressOfRecord canonicalizes the To URI (RFC 3261 §10.3 step 5): scheme,
// unescaped user, lower-case host and port, no parameters.
func addressOfRecord(to *sip.ToHeader) (aor, user string, err error) {
	if to == nil {
		return "", "", errors.New("missing To")
	}
	return sipmsg.AddressOfRecord(to.Address)
}
