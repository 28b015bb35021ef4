package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/siphon-lab/siphon/pkg/sipbus"

	"github.com/icholy/digest"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/uac"
)

// stepTimeout bounds one send step: Timer B or F and a margin; an INVITE
// nobody answers is given up on with a CANCEL.
const stepTimeout = 40 * time.Second

// Sender is the send path as the runner uses it (uac.Client).
type Sender interface {
	Do(ctx context.Context, req *sip.Request, via uac.Via, onProvisional func(uac.Response)) (uac.Response, error)
	Invite(ctx context.Context, req *sip.Request, via uac.Via, ack func(*sip.Response) (*sip.Request, error), onProvisional func(uac.Response)) (uac.Response, error)
}

// Result is one step's outcome.
type Result struct {
	// Actor is the actor whose step it is ("" in a one-party scenario).
	Actor string
	Index int
	Step  Step
	// OK says the step held: a send got a final response, an expect saw the
	// status it wanted.
	OK bool
	// Got is what came (a send's final status, an expect's comparison).
	Got string
	Err error
	// Elapsed is how long the step took (a send's response time).
	Elapsed time.Duration
}

func (r Result) String() string {
	what := r.Step.Type
	switch r.Step.Type {
	case "send":
		what += " " + r.Step.Method + " " + r.Step.URI
	case "sleep":
		what += " " + strconv.Itoa(r.Step.MS) + " ms"
	case "expect":
		if r.Step.Request != "" {
			what += " request " + r.Step.Request
		} else {
			what += " status " + orNone(r.Step.Status)
		}
	case "respond":
		what += " " + orNone(r.Step.Status)
	case "capture":
		what += " " + r.Step.Var
	case "register":
		what += " " + r.Step.User + " at " + r.Step.URI
	case "barrier":
		what += " " + r.Step.Name
	}
	outcome := "ok"
	if !r.OK {
		outcome = "FAILED"
	}
	s := fmt.Sprintf("step %d (%s): %s", r.Index+1, what, outcome)
	if r.Actor != "" {
		s = r.Actor + " " + s
	}
	if r.Got != "" {
		s += ": " + r.Got
	}
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// Runner plays one actor of scenarios through the send path.
type Runner struct {
	Send      Sender
	IDs       *ids.Generator
	Clock     clockwork.Clock
	UserAgent string
	// Env looks up ${NAME} when no capture set it (os.Getenv).
	Env func(string) string
	// Vars are built-in variables (local_addr: the actor's own edge).
	Vars map[string]string
	// Actor names the actor this runner plays ("": the first).
	Actor string
	// Inbox has the requests that come to the actor's edge; nil when none
	// come (an expect request then fails at once).
	Inbox *Inbox
	// Barriers is where the actors meet; nil: this runner's actor alone.
	Barriers Barriers
}

// dialog is one the scenario established, for the later requests to its URI.
type dialog struct {
	d         uac.Dialog
	cseq      uint32
	via       uac.Via
	transport string
	// established: the route set is set for the dialog's life (RFC 3261
	// §12.2.1.2: a re-INVITE's 2xx does not change it).
	established bool
}

// call is one run of an actor's steps: what the steps before left for the
// next.
type call struct {
	rn      *Runner
	sc      *Scenario
	actor   *Actor
	number  int
	vars    map[string]string
	dialogs map[string]*dialog // by the peer's URI: the request URI, or the caller's for a dialog this side answered
	mb      *mailbox
	// received is the request last expected, for respond; backlog the
	// requests that came while another was expected.
	received *sipbus.Request
	backlog  []*sipbus.Request
	invites  map[string]*sipbus.Request // the INVITEs received, by Call-ID: what a respond after their CANCEL answers
	final    map[*sipbus.Request]bool   // the requests this side has sent a final response to
	tags     map[string]string          // this side's To tag, by Call-ID
	rounds   map[string]int             // the times this call came to each barrier
	last     *sip.Response
}

// Run runs sc's actor once, handing each step's result to report as it
// ends, and says whether every step held.
func (rn *Runner) Run(ctx context.Context, sc *Scenario, report func(Result)) bool {
	return rn.run(ctx, sc, map[string]string{"call_number": "1"}, report)
}

func (rn *Runner) run(ctx context.Context, sc *Scenario, vars map[string]string, report func(Result)) bool {
	actor := &sc.Actors[0]
	if rn.Actor != "" {
		if actor = sc.Actor(rn.Actor); actor == nil {
			report(Result{Actor: rn.Actor, OK: false, Err: fmt.Errorf("the scenario has no actor %q", rn.Actor)})
			return false
		}
	}
	for k, v := range rn.Vars {
		if _, ok := vars[k]; !ok {
			vars[k] = v
		}
	}
	// The actor's own addresses may name variables too (${local_addr}).
	own := Step{URI: actor.LocalURI, Body: actor.ContactURI}
	if rn.expand(&own, vars) == nil {
		copied := *actor
		copied.LocalURI, copied.ContactURI = own.URI, own.Body
		actor = &copied
	}
	c := &call{rn: rn, sc: sc, actor: actor, vars: vars, dialogs: map[string]*dialog{},
		invites: map[string]*sipbus.Request{}, final: map[*sipbus.Request]bool{}, tags: map[string]string{}, rounds: map[string]int{}}
	c.number, _ = strconv.Atoi(vars["call_number"])
	if rn.Inbox != nil {
		c.mb = rn.Inbox.open()
		defer c.closeMailbox()
	}
	all := true
	for i, st := range actor.Steps {
		res := Result{Actor: actor.Name, Index: i, Step: st, OK: true}
		if err := rn.expand(&st, vars); err != nil {
			res.OK, res.Err = false, err
			all = false
			report(res)
			continue
		}
		res.Step = st
		t0 := rn.Clock.Now()
		c.step(ctx, st, &res)
		res.Elapsed = rn.Clock.Since(t0)
		if !res.OK && st.Type == "expect" && st.Optional {
			res.OK, res.Got = true, "optional, not met: "+res.Got+errText(res.Err)
			res.Err = nil
		}
		all = all && res.OK
		report(res)
		if ctx.Err() != nil {
			return false
		}
	}
	return all
}

// step runs st, its outcome in res.
func (c *call) step(ctx context.Context, st Step, res *Result) {
	rn := c.rn
	if st.Type == "register" {
		st = registerStep(c.actor, st)
	}
	switch st.Type {
	case "send":
		got, err := c.send(ctx, st)
		c.last = got
		if err != nil {
			res.OK, res.Err = false, err
			return
		}
		res.Got = strconv.Itoa(got.StatusCode) + " " + got.Reason
	case "sleep":
		select {
		case <-rn.Clock.After(time.Duration(st.MS) * time.Millisecond):
		case <-ctx.Done():
			res.OK, res.Err = false, ctx.Err()
		}
	case "barrier":
		within := time.Duration(st.TimeoutMS) * time.Millisecond
		if within == 0 {
			within = 30 * time.Second
		}
		parties := c.sc.Parties(st.Name)
		if parties <= 1 || rn.Barriers == nil {
			return // no other actor meets here
		}
		c.rounds[st.Name]++
		m := Meeting{Barrier: st.Name, Call: c.number, Round: c.rounds[st.Name], Parties: parties, Actor: c.actor.Name, Within: within}
		if err := rn.Barriers.Wait(ctx, m, within); err != nil {
			res.OK, res.Err = false, err
			return
		}
		res.Got = strconv.Itoa(parties) + " actors met"
	case "respond":
		c.respond(st, res)
	case "capture":
		if c.last == nil {
			res.OK, res.Got = false, "no response to capture from"
			return
		}
		in := string(c.last.Body())
		if st.Header != "" {
			in = ""
			if h := c.last.GetHeader(st.Header); h != nil {
				in = h.Value()
			}
		}
		m := regexp.MustCompile(st.Regex).FindStringSubmatch(in) // compiled once on load already
		switch {
		case m == nil:
			res.OK, res.Got = false, "no match for "+st.Regex
			return
		case len(m) > 1:
			c.vars[st.Var] = m[1]
		default:
			c.vars[st.Var] = m[0]
		}
		res.Got = st.Var + "=" + c.vars[st.Var]
	case "expect":
		if st.Request != "" {
			req, err := c.await(ctx, st)
			if err != nil {
				res.OK, res.Err = false, err
				return
			}
			c.received = req
			if req.IsInvite() {
				c.invites[req.CallID().Value()] = req
			}
			res.Got = "got " + string(req.Method) + " " + req.Recipient.String()
			if msg := mismatch(st, req.Request); msg != "" {
				res.OK, res.Got = false, res.Got+": "+msg
			}
			return
		}
		lo, hi, err := st.statusRange()
		switch {
		case err != nil:
			res.OK, res.Err = false, fmt.Errorf("status: %w", err)
		case c.last == nil:
			res.OK, res.Got = false, "no response to compare"
		case c.last.StatusCode < lo || c.last.StatusCode > hi:
			res.OK, res.Got = false, fmt.Sprintf("got %d %s, expected %s", c.last.StatusCode, c.last.Reason, orNone(st.Status))
		default:
			res.Got = fmt.Sprintf("got %d %s", c.last.StatusCode, c.last.Reason)
			if msg := mismatch(st, c.last); msg != "" {
				res.OK, res.Got = false, res.Got+": "+msg
			}
		}
	}
}

// closeMailbox gives up the call's dialogs; a new request that came to it
// too late goes to another call, one in its dialogs gets 481.
func (c *call) closeMailbox() {
	for _, r := range c.mb.close() {
		if r.Method == sip.ACK || r.Method == sip.CANCEL {
			continue
		}
		if (r.To() == nil || !r.To().Params.Has("tag")) && c.rn.Inbox.Deliver(r) {
			continue
		}
		_ = r.Respond(sipmsg.Refusal(r.Request, 481, "Call/Transaction Does Not Exist", "siphon-scenario", "the scenario's call for it has ended", c.rn.IDs))
	}
}

// respond answers the request last expected; after a CANCEL, the INVITE it
// cancels (the edge answered the CANCEL itself, RFC 3261 §9.2).
func (c *call) respond(st Step, res *Result) {
	req := c.received
	if req != nil && req.Method == sip.CANCEL {
		req = c.invites[req.CallID().Value()]
		if req == nil {
			res.OK, res.Got = false, "no INVITE of this CANCEL's call to respond to"
			return
		}
	}
	if req == nil {
		res.OK, res.Got = false, "no request to respond to"
		return
	}
	if c.final[req] {
		res.OK, res.Got = false, "the "+string(req.Method)+" has its final response already"
		return
	}
	var code int
	_ = json.Unmarshal(st.Status, &code)
	out := respondTo(req, code, st, c.tags, c.actor, c.rn)
	if err := req.Respond(out); err != nil {
		res.OK, res.Err = false, err
		return
	}
	res.Got = "sent " + strconv.Itoa(code) + " " + out.Reason
	if code >= 200 {
		c.final[req] = true
	}
	switch {
	case code >= 200 && code < 300 && (req.IsInvite() || req.Method == sip.SUBSCRIBE || req.Method == sip.REFER):
		c.answered(req, out)
	case code >= 200 && code < 300 && req.Method == sip.BYE:
		for uri, dl := range c.dialogs {
			if dl.d.CallID == req.CallID().Value() {
				delete(c.dialogs, uri)
			}
		}
	}
}

// answered keeps the dialog this side's 2xx made (RFC 3261 §12.1.1) under
// the caller's URI, so a later send to that URI (a BYE, a REFER) goes in it:
// the caller's Contact its remote target, the Record-Route as it came its
// route set, over the flow the request came by.
func (c *call) answered(req *sipbus.Request, res *sip.Response) {
	if req.To().Params.Has("tag") {
		// In a dialog already (a re-INVITE, a refresh): only its remote target
		// changes (target refresh, §12.2.2).
		for _, dl := range c.dialogs {
			if dl.d.CallID == req.CallID().Value() && req.Contact() != nil {
				dl.d.RemoteTarget = req.Contact().Address.String()
			}
		}
		return
	}
	key := req.From().Address.String()
	remoteTag, _ := req.From().Params.Get("tag")
	localTag, _ := res.To().Params.Get("tag")
	d := uac.Dialog{CallID: req.CallID().Value(), LocalURI: "<" + req.To().Address.String() + ">", LocalTag: localTag,
		RemoteURI: "<" + key + ">", RemoteTag: remoteTag, RemoteTarget: key,
		Contact: orDefault(c.actor.ContactURI, c.actor.LocalURI), UserAgent: c.rn.UserAgent}
	if ct := req.Contact(); ct != nil {
		d.RemoteTarget = ct.Address.String()
	}
	for _, h := range req.GetHeaders("Record-Route") {
		d.RouteSet = append(d.RouteSet, h.Value())
	}
	dl := &dialog{d: d, transport: strings.ToLower(orDefault(req.Transport, "udp")), via: uac.Via{Edge: req.Edge, Flow: req.Flow}, established: true}
	if len(d.RouteSet) == 0 && req.Flow == "" {
		var target sip.Uri
		if sip.ParseUri(d.RemoteTarget, &target) == nil {
			dl.via.Dest, _ = destination(target, dl.transport)
		}
	}
	c.dialogs[key] = dl
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// mismatch says what of an expect's header and body expressions msg does
// not match, or "".
func mismatch(st Step, msg interface {
	GetHeader(string) sip.Header
	Body() []byte
}) string {
	for _, h := range st.Headers {
		v := ""
		if got := msg.GetHeader(h.Name); got != nil {
			v = got.Value()
		}
		if !regexp.MustCompile(h.Value).MatchString(v) { // compiled on load already
			return fmt.Sprintf("%s %q does not match %s", h.Name, v, h.Value)
		}
	}
	if st.Body != "" && !regexp.MustCompile(st.Body).Match(msg.Body()) {
		return "the body does not match " + st.Body
	}
	return ""
}

// await is the next request of st.Request to come to this call, from the
// backlog first.
func (c *call) await(ctx context.Context, st Step) (*sipbus.Request, error) {
	for i, r := range c.backlog {
		if string(r.Method) == st.Request {
			c.backlog = append(c.backlog[:i], c.backlog[i+1:]...)
			return r, nil
		}
	}
	if c.mb == nil {
		return nil, errors.New("no request comes to this actor: it has no edge of its own (give it a bind, or use siphond run)")
	}
	if r := c.mb.claim(st.Request); r != nil {
		return r, nil
	}
	defer c.mb.unwant()
	within := time.Duration(st.TimeoutMS) * time.Millisecond
	if within == 0 {
		within = 10 * time.Second
	}
	timeout := c.rn.Clock.After(within)
	for {
		select {
		case r := <-c.mb.ch:
			if string(r.Method) == st.Request {
				return r, nil
			}
			c.backlog = append(c.backlog, r)
		case <-timeout:
			return nil, fmt.Errorf("no %s within %v", st.Request, within)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// respondTo is a response to req: code, the step's reason, headers and
// body, this side's To tag for the dialog (one per Call-ID), and a Contact
// when it makes or keeps a dialog.
func respondTo(req *sipbus.Request, code int, st Step, tags map[string]string, a *Actor, rn *Runner) *sip.Response {
	reason := st.Reason
	if reason == "" {
		reason = reasons[code]
	}
	out := sip.NewResponseFromRequest(req.Request, code, reason, []byte(st.Body))
	if code > 100 && !req.To().Params.Has("tag") {
		tag, ok := tags[req.CallID().Value()]
		if !ok {
			tag = rn.IDs.Tag()
			tags[req.CallID().Value()] = tag
		}
		out.To().Params.Add("tag", tag)
	}
	if code > 100 && code < 300 && (req.IsInvite() || req.Method == sip.SUBSCRIBE || req.Method == sip.REFER) {
		// A dialog: the proxies' Record-Route as it came (RFC 3261 §12.1.1).
		if out.GetHeader("Record-Route") == nil {
			for _, h := range req.GetHeaders("Record-Route") {
				out.AppendHeader(sip.NewHeader("Record-Route", h.Value()))
			}
		}
		out.AppendHeader(sip.NewHeader("Contact", "<"+orDefault(a.ContactURI, a.LocalURI)+">"))
	}
	for _, h := range st.Headers {
		sipmsg.ReplaceHeaders(out, h.Name, h.Value)
	}
	if st.Body != "" && out.GetHeader("Content-Type") == nil {
		out.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	return out
}

// reasons are the reason phrases a respond step gets when it gives none.
var reasons = map[int]string{100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
	480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 486: "Busy Here", 487: "Request Terminated",
	488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable", 603: "Decline"}

// variable is ${name} in a step's fields.
var variable = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand puts the variables' values in st's fields: captures first, then
// the environment; an unknown name fails the step.
func (rn *Runner) expand(st *Step, vars map[string]string) error {
	var missing string
	sub := func(s string) string {
		return variable.ReplaceAllStringFunc(s, func(m string) string {
			name := m[2 : len(m)-1]
			if v, ok := vars[name]; ok {
				return v
			}
			if rn.Env != nil {
				if v := rn.Env(name); v != "" {
					return v
				}
			}
			missing = name
			return m
		})
	}
	st.Method, st.URI, st.Body, st.Transport = sub(st.Method), sub(st.URI), sub(st.Body), sub(st.Transport)
	var status string
	if json.Unmarshal(st.Status, &status) == nil && variable.MatchString(status) {
		st.Status, _ = json.Marshal(sub(status))
		if n, err := strconv.Atoi(strings.Trim(string(st.Status), `"`)); err == nil {
			st.Status, _ = json.Marshal(n) // "486" from a variable is the code 486
		}
	}
	hs := make([]Header, len(st.Headers))
	for i, h := range st.Headers {
		hs[i] = Header{Name: h.Name, Value: sub(h.Value)}
	}
	st.Headers = hs
	if missing != "" {
		return fmt.Errorf("${%s}: no capture and no environment variable of that name", missing)
	}
	return nil
}

// send sends one request: inside the dialog an earlier INVITE to the same
// URI established (BYE after INVITE), else as a new one with a fresh
// Call-ID, tag and CSeq; a 2xx to an INVITE is ACKed and its dialog kept.
func (c *call) send(ctx context.Context, st Step) (*sip.Response, error) {
	rn, a, dialogs := c.rn, c.actor, c.dialogs
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	method := sip.RequestMethod(st.Method)
	contentType := ""
	for _, h := range st.Headers {
		if strings.EqualFold(h.Name, "Content-Type") {
			contentType = h.Value
		}
	}
	if contentType == "" && st.Body != "" {
		contentType = "application/sdp" // siphond's scenarios carry SDP
	}
	var req *sip.Request
	var err error
	var via uac.Via
	existing := dialogs[st.URI]
	if existing != nil { // in the dialog: a BYE, a re-INVITE (hold), a SUBSCRIBE refresh
		existing.cseq++
		req, err = existing.d.Request(method, existing.cseq, contentType, []byte(st.Body))
		via = existing.via
	} else {
		existing = nil
		transport := strings.ToLower(orDefault(st.Transport, a.DefaultTransport))
		local, remote := a.LocalURI, st.URI
		if st.from != "" { // a REGISTER's From and To are the address-of-record
			local, remote = st.from, st.from
		}
		d := uac.Dialog{CallID: rn.IDs.CallID(""), LocalURI: "<" + local + ">", LocalTag: rn.IDs.Tag(), RemoteURI: "<" + remote + ">",
			RemoteTarget: st.URI, Contact: a.ContactURI, UserAgent: rn.UserAgent}
		if d.Contact == "" {
			d.Contact = a.LocalURI
		}
		req, err = d.Request(method, 1, contentType, []byte(st.Body))
		if err == nil {
			via.Dest, err = destination(req.Recipient, transport)
		}
		if err == nil && (method == sip.INVITE || method == sip.SUBSCRIBE) { // dialog-creating (RFC 6665 §4.1.2.1 too)
			existing = &dialog{d: d, cseq: 1, via: via, transport: transport}
		}
		if c.mb != nil {
			c.mb.own(d.CallID) // the peer's requests in what this starts (a NOTIFY, its BYE) are this call's
		}
	}
	if err != nil {
		return nil, err
	}
	for _, h := range st.Headers {
		if !strings.EqualFold(h.Name, "Content-Type") {
			sipmsg.ReplaceHeaders(req, h.Name, h.Value)
		}
	}
	if r := req.GetHeader("Route"); r != nil && via.Dest != "" {
		// A Route the step gave (an outbound proxy): the first hop is where
		// the request goes (RFC 3261 §8.1.2).
		if first, err := uac.RouteURI(strings.Split(r.Value(), ",")[0]); err == nil {
			via.Dest, _ = destination(first, strings.ToLower(orDefault(st.Transport, a.DefaultTransport)))
		}
	}
	auth := st.Auth
	if auth == nil {
		auth = a.Auth
	}
	if method != sip.INVITE {
		res, err := rn.Send.Do(ctx, req, via, nil)
		if err == nil && auth != nil && (res.StatusCode == 401 || res.StatusCode == 407) {
			if again, ok := answer(req, res.Response, auth); ok {
				if existing != nil {
					existing.cseq = again.CSeq().SeqNo
				}
				res, err = rn.Send.Do(ctx, again, via, nil)
			}
		}
		if err != nil {
			return nil, err
		}
		switch {
		case method == sip.BYE && res.IsSuccess(), method == sip.SUBSCRIBE && res.IsSuccess() && expiresZero(req):
			delete(dialogs, st.URI)
		case method == sip.SUBSCRIBE && res.IsSuccess() && dialogs[st.URI] == nil && existing != nil:
			keep(existing, res)
			dialogs[st.URI] = existing
		}
		return res.Response, nil
	}
	res, err := rn.invite(ctx, req, via, existing)
	if err == nil && auth != nil && (res.StatusCode == 401 || res.StatusCode == 407) {
		if again, ok := answer(req, res.Response, auth); ok {
			existing.cseq = again.CSeq().SeqNo
			res, err = rn.invite(ctx, again, via, existing)
		}
	}
	if err != nil {
		return nil, err
	}
	if res.IsSuccess() && existing != nil {
		keep(existing, res)
		dialogs[st.URI] = existing
	}
	return res.Response, nil
}

// keep takes the dialog a 2xx made (or refreshed): the peer's tag, its
// Contact as the remote target, the Record-Route reversed as the route set;
// in the dialog the route set says where requests go, or else the remote
// target, over the transport the first request took.
func keep(dl *dialog, res uac.Response) {
	if dl.d.RemoteTag == "" {
		dl.d.RemoteTag, _ = res.To().Params.Get("tag")
	}
	if ct := res.Contact(); ct != nil {
		dl.d.RemoteTarget = ct.Address.String()
	}
	if !dl.established {
		dl.established = true
		rr := res.GetHeaders("Record-Route")
		for i := len(rr) - 1; i >= 0; i-- { // a UAC's route set is the reverse (RFC 3261 §12.1.2)
			dl.d.RouteSet = append(dl.d.RouteSet, rr[i].Value())
		}
	}
	if res.Edge != "" {
		dl.via.Edge = res.Edge
	}
	dl.via.Dest = ""
	if len(dl.d.RouteSet) == 0 {
		var target sip.Uri
		if sip.ParseUri(strings.Trim(dl.d.RemoteTarget, "<>"), &target) == nil {
			dl.via.Dest, _ = destination(target, dl.transport)
		}
	}
}

// expiresZero says a SUBSCRIBE ends its subscription (Expires: 0).
func expiresZero(req *sip.Request) bool {
	h := req.GetHeader("Expires")
	return h != nil && strings.TrimSpace(h.Value()) == "0"
}

// invite sends an INVITE whose 2xx is ACKed (in its dialog, along its
// Record-Route reversed: a UAC's route set, RFC 3261 §12.1.2).
func (rn *Runner) invite(ctx context.Context, req *sip.Request, via uac.Via, dl *dialog) (uac.Response, error) {
	cseq := req.CSeq().SeqNo
	return rn.Send.Invite(ctx, req, via, func(res *sip.Response) (*sip.Request, error) {
		d := dl.d
		if d.RemoteTag == "" { // an initial INVITE's 2xx makes the dialog; a re-INVITE's keeps it
			d.RemoteTag, _ = res.To().Params.Get("tag")
			rr := res.GetHeaders("Record-Route")
			for i := len(rr) - 1; i >= 0; i-- {
				d.RouteSet = append(d.RouteSet, rr[i].Value())
			}
		}
		if ct := res.Contact(); ct != nil {
			d.RemoteTarget = ct.Address.String()
		}
		return d.Request(sip.ACK, cseq, "", nil)
	}, nil)
}

// answer is req again with a digest answering res's challenge (RFC 3261
// §22.2): the same Call-ID and tag, CSeq one higher; false when res has no
// challenge this can answer.
func answer(req *sip.Request, res *sip.Response, auth *Auth) (*sip.Request, bool) {
	challenge, header := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		challenge, header = "Proxy-Authenticate", "Proxy-Authorization"
	}
	for _, h := range res.GetHeaders(challenge) {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil || !digest.CanDigest(chal) {
			continue
		}
		creds, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: req.Recipient.String(),
			Username: auth.Username, Password: auth.Password, Count: 1})
		if err != nil {
			continue
		}
		again := req.Clone()
		again.RemoveHeader("Via") // a new transaction: the edge puts its own
		sipmsg.ReplaceHeaders(again, header, creds.String())
		again.CSeq().SeqNo++
		return again, true
	}
	return nil, false
}

// registerStep is a register step as the send it stands for.
func registerStep(a *Actor, st Step) Step {
	var u sip.Uri
	_ = sip.ParseUri(st.URI, &u)
	aor := "sip:" + st.User + "@" + u.Host
	expires := 3600
	if st.Expires != nil {
		expires = *st.Expires
	}
	contact := orDefault(a.ContactURI, a.LocalURI)
	return Step{Type: "send", Method: "REGISTER", URI: st.URI, Transport: st.Transport, Auth: st.Auth, from: aor,
		Headers: append([]Header{{Name: "Contact", Value: "<" + contact + ">"}, {Name: "Expires", Value: strconv.Itoa(expires)}}, st.Headers...)}
}

// destination is where a request to u goes over transport: its host and
// port (5060; 5061 for TLS; 80 and 443 for WS and WSS, RFC 7118's
// WebSocket defaults), as the edge's transport:host:port.
func destination(u sip.Uri, transport string) (string, error) {
	port := u.Port
	if port == 0 {
		port = map[string]int{"tls": 5061, "ws": 80, "wss": 443}[transport]
		if port == 0 {
			port = 5060
		}
	}
	return transport + ":" + net.JoinHostPort(u.Host, strconv.Itoa(port)), nil
}

func orDefault(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}
