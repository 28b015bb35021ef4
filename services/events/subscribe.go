package events

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/uac"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// subscribe serves SUBSCRIBE (RFC 6665 §4.2.1): a new subscription, a
// refresh, a fetch (Expires: 0 outside a dialog) or an unsubscribe (Expires: 0
// inside one). The 200 goes first, then a NOTIFY with the current state.
func (e *Events) subscribe(r *sipbus.Request) {
	if !e.cfg.AutoAccept {
		e.refuse(r, 603, "Decline", "subscriptions are not accepted here (--auto-accept-subscriptions=false)")
		return
	}
	pkg, eventID, ok := eventHeader(r.Request)
	if !ok {
		e.refuse(r, 400, "Bad Request", "SUBSCRIBE without an Event header (RFC 6665 §7.2.1)")
		return
	}
	if packages[pkg] == nil {
		// §4.2.1.2: 489, and the packages this notifier has.
		e.refuse(r, 489, "Bad Event", "unknown event package "+pkg, sip.NewHeader("Allow-Events", allowEvents()))
		return
	}
	expires, ok := e.expires(r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if tag, inDialog := r.To().Params.Get("tag"); inDialog && tag != "" {
		e.resubscribe(ctx, r, tag, pkg, eventID, expires)
		return
	}
	e.start(ctx, r, e.newSubscription(r, pkg, eventID, expires), expires)
}

// start stores s, answers 200 and sends the first NOTIFY; with Expires: 0
// it is a fetch (§4.4.3): the state once, and the subscription is over.
func (e *Events) start(ctx context.Context, r *sipbus.Request, s *store.Subscription, expires int) {
	if expires > 0 {
		if err := e.subs.Create(ctx, s); err != nil {
			e.log.Error("store subscription", "id", s.ID, "error", err)
			e.refuse(r, 500, "Server Internal Error", "subscription store unavailable")
			return
		}
	}
	e.ok(r, s.LocalTag, expires)
	reason := ""
	if expires == 0 {
		s.State, reason = "terminated", "timeout"
	}
	e.notifyLater(s, reason)
}

// resubscribe refreshes or ends the subscription to pkg (and Event id) in
// the dialog whose tag is ours (§4.2.1.2, §4.2.1.4); one the dialog does not
// hold yet is a new subscription in it (§4.5.2: the Event id tells them apart).
func (e *Events) resubscribe(ctx context.Context, r *sipbus.Request, tag, pkg, eventID string, expires int) {
	id := store.SubscriptionID(r.CallID().Value(), tag, pkg, eventID)
	var s *store.Subscription
	var err error
	if expires == 0 {
		s, err = e.subs.Delete(ctx, id)
	} else {
		fromTag, _ := r.From().Params.Get("tag")
		s, err = store.RetrySubscription(ctx, e.subs, id, func(s *store.Subscription) error {
			switch {
			case s.RemoteTag != fromTag || !s.Expires.After(e.clock.Now()):
				// Another dialog's, or expired and the sweep's to end (§4.2.1.2).
				return store.ErrSubscriptionNotFound
			case r.CSeq().SeqNo < s.RemoteCSeq:
				return errOutOfOrder
			}
			s.RemoteCSeq, s.Expires = r.CSeq().SeqNo, e.clock.Now().Add(time.Duration(expires)*time.Second)
			if c := r.Contact(); c != nil { // SUBSCRIBE refreshes the target (§4.1.2.1)
				s.RemoteTarget = c.Address.String()
			}
			return nil
		})
	}
	switch {
	case errors.Is(err, store.ErrSubscriptionNotFound):
		if sibling := e.sibling(ctx, r, tag); sibling != nil {
			e.start(ctx, r, e.usage(r, sibling, pkg, eventID, expires), expires)
			return
		}
		e.refuse(r, 481, "Subscription Does Not Exist", "no subscription "+id)
		return
	case errors.Is(err, errOutOfOrder):
		e.refuse(r, 500, "Server Internal Error", "CSeq below the last SUBSCRIBE's (RFC 3261 §12.2.2)")
		return
	case err != nil:
		e.log.Error("refresh subscription", "id", id, "error", err)
		e.refuse(r, 500, "Server Internal Error", "subscription store unavailable")
		return
	}
	e.ok(r, s.LocalTag, expires)
	if expires == 0 {
		s.State = "terminated"
		e.ended(s, "unsubscribed")
	}
	e.notifyLater(s, "")
}

// notifyLater hands s's NOTIFY to the notifiers: a subscriber slow to answer
// holds one of them, not a worker of the SUBSCRIBE handler. The 200 went
// first, though the NOTIFY may still overtake it (RFC 6665 §4.1.2.4).
func (e *Events) notifyLater(s *store.Subscription, reason string) {
	e.enqueue(func() {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		e.notify(ctx, s, reason)
	})
}

// sibling is a live subscription in r's dialog, or nil: its remote tag must
// be the request's From tag.
func (e *Events) sibling(ctx context.Context, r *sipbus.Request, tag string) *store.Subscription {
	ss, err := e.subs.InDialog(ctx, r.CallID().Value(), tag)
	if err != nil {
		e.log.Warn("subscriptions in dialog", "call_id", r.CallID().Value(), "error", err)
		return nil
	}
	fromTag, _ := r.From().Params.Get("tag")
	for _, s := range ss {
		if s.RemoteTag == fromTag && s.Expires.After(e.clock.Now()) {
			return s
		}
	}
	return nil
}

// usage is a new subscription to pkg in sibling's dialog: the same
// resource, watcher and route set; the SUBSCRIBE's Contact, when it has one,
// is the new remote target (a target refresh, RFC 6665 §4.1.2.1).
func (e *Events) usage(r *sipbus.Request, sibling *store.Subscription, pkg, eventID string, expires int) *store.Subscription {
	s := *sibling
	s.ID, s.Event, s.EventID = store.SubscriptionID(s.CallID, s.LocalTag, pkg, eventID), pkg, eventID
	s.RemoteCSeq, s.State, s.BodyVersion, s.Version = r.CSeq().SeqNo, "active", 0, 0
	s.Expires = e.clock.Now().Add(time.Duration(expires) * time.Second)
	if c := r.Contact(); c != nil {
		s.RemoteTarget = c.Address.String()
	}
	return &s
}

var errOutOfOrder = errors.New("events: SUBSCRIBE out of order")

// expires is the subscription's duration by the request and the bounds; it
// answers 423 itself and reports false when the request is refused.
func (e *Events) expires(r *sipbus.Request) (int, bool) {
	n := e.cfg.DefaultExpiry
	if h := r.GetHeader("Expires"); h != nil {
		v, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || v < 0 {
			e.refuse(r, 400, "Bad Request", "Expires: want seconds")
			return 0, false
		}
		n = v
	}
	if n > 0 && n < e.cfg.MinExpiry {
		e.refuse(r, 423, "Interval Too Brief", "", sip.NewHeader("Min-Expires", strconv.Itoa(e.cfg.MinExpiry)))
		return 0, false
	}
	return min(n, e.cfg.MaxExpiry), true
}

// newSubscription is the subscription a SUBSCRIBE outside a dialog makes.
func (e *Events) newSubscription(r *sipbus.Request, pkg, eventID string, expires int) *store.Subscription {
	tag := e.ids.Tag()
	fromTag, _ := r.From().Params.Get("tag")
	var routes []string
	for _, h := range r.GetHeaders("Record-Route") {
		routes = append(routes, h.Value())
	}
	target := ""
	if c := r.Contact(); c != nil {
		target = c.Address.String()
	}
	aor, _, _ := sipmsg.AddressOfRecord(r.Recipient)
	return &store.Subscription{
		ID: store.SubscriptionID(r.CallID().Value(), tag, pkg, eventID), CallID: r.CallID().Value(), LocalTag: tag, RemoteTag: fromTag,
		Event: pkg, EventID: eventID, Resource: aor, Watcher: r.From().Address.String(),
		RemoteTarget: target, RouteSet: routes, RemoteCSeq: r.CSeq().SeqNo, State: "active",
		Edge: r.Edge, Transport: r.Transport, Flow: r.Flow, Local: r.Reachable(),
		Expires: e.clock.Now().Add(time.Duration(expires) * time.Second),
	}
}

// ok answers 200 with the subscription's tag, Expires and Contact.
func (e *Events) ok(r *sipbus.Request, tag string, expires int) {
	res := sip.NewResponseFromRequest(r.Request, 200, "OK", nil)
	if !r.To().Params.Has("tag") {
		res.To().Params.Add("tag", tag)
	}
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	res.AppendHeader(sip.NewHeader("Contact", "<sip:siphon@"+r.Reachable()+">"))
	e.reply(r, res)
}

// eventHeader is the Event header's package and id parameter.
func eventHeader(req *sip.Request) (pkg, id string, ok bool) {
	h := req.GetHeader("Event")
	if h == nil {
		return "", "", false
	}
	parts := strings.Split(h.Value(), ";")
	// Event types compare byte for byte (RFC 6665 §8.2.1): "Presence" is
	// not a package here.
	pkg = strings.TrimSpace(parts[0])
	for _, p := range parts[1:] {
		if k, v, found := strings.Cut(strings.TrimSpace(p), "="); found && strings.EqualFold(k, "id") {
			id = v
		}
	}
	return pkg, id, pkg != ""
}

// bodyFunc makes a NOTIFY body for s that the package's own cannot: the
// change an event brought.
type bodyFunc func(s *store.Subscription) (body []byte, contentType string)

// notify sends s's current state (reason, when set, goes with a terminated
// state), or with, when given, the body it makes. A 481 or no answer ends the
// subscription (§4.2.2).
func (e *Events) notify(ctx context.Context, s *store.Subscription, reason string, with ...bodyFunc) {
	dialog := s.CallID + ";" + s.LocalTag
	defer e.dialogs.lock(dialog)()
	defer e.lease(ctx, dialog)()
	var cseq uint32
	next := func(s *store.Subscription) (err error) {
		cseq, err = e.subs.NextCSeq(ctx, s.CallID, s.LocalTag, s.Expires.Add(store.SubscriptionGrace))
		s.BodyVersion++
		return err
	}
	if s.State != "terminated" {
		// One writer per subscription: the CSeq is taken inside the
		// compare-and-set, so bodies' versions rise with the CSeqs.
		var err error
		if s, err = store.RetrySubscription(ctx, e.subs, s.ID, next); err != nil {
			e.log.Warn("subscription gone before its NOTIFY", "error", err)
			return
		}
	} else if err := next(s); err != nil {
		e.log.Warn("NOTIFY CSeq", "id", s.ID, "error", err)
		return
	}
	var body []byte
	var contentType string
	if len(with) > 0 {
		body, contentType = with[0](s)
	} else {
		var err error
		if body, contentType, err = packages[s.Event].body(ctx, e, s); err != nil {
			e.log.Warn("NOTIFY body", "event", s.Event, "error", err)
			return
		}
	}
	state := "active;expires=" + strconv.Itoa(max(0, int(s.Expires.Sub(e.clock.Now()).Round(time.Second)/time.Second)))
	if s.State == "terminated" {
		state = "terminated"
		if reason != "" {
			state += ";reason=" + reason
		}
	}
	d := uac.Dialog{CallID: s.CallID, LocalURI: "<" + s.Resource + ">", LocalTag: s.LocalTag, RemoteURI: "<" + s.Watcher + ">",
		RemoteTag: s.RemoteTag, RemoteTarget: s.RemoteTarget, RouteSet: s.RouteSet, Contact: "sip:siphon@" + s.Local, UserAgent: e.userAgent}
	req, err := d.Request(sip.NOTIFY, cseq, contentType, body)
	if err != nil {
		e.log.Warn("NOTIFY not built", "id", s.ID, "error", err)
		return
	}
	event := s.Event
	if s.EventID != "" {
		event += ";id=" + s.EventID
	}
	req.AppendHeader(sip.NewHeader("Event", event))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	via := uac.Via{}
	if s.Flow != "" {
		via = uac.Via{Edge: s.Edge, Flow: s.Flow}
	}
	res, err := e.send.Do(ctx, req, via, nil)
	if s.State != "terminated" && failed(res, err) {
		if _, err := e.subs.Delete(ctx, s.ID); err == nil {
			e.ended(s, "notify-failed")
		}
	}
}

// ended announces that s is over, and why.
func (e *Events) ended(s *store.Subscription, reason string) {
	e.announce(wire.StateEvent{Event: wire.EventSubscriptionEnded, Package: s.Event, Resource: s.Resource, CallID: s.CallID,
		From: s.Watcher, Reason: reason})
}

// lease holds dialog's NOTIFYs to one at a time across replicas too (a
// claim in the store, as long as a NOTIFY may take): the CSeq is taken and
// the body made under it, so the subscriber gets CSeqs in order and the
// newest state last. A claim held longer than leaseWait (a subscriber
// slow to answer, a replica that died holding it) is given up on: the
// NOTIFY goes anyway.
func (e *Events) lease(ctx context.Context, dialog string) (release func()) {
	key := "events-notify:" + dialog
	deadline := e.clock.Now().Add(leaseWait)
	for {
		ok, err := e.eph.Claim(ctx, key, leaseTTL)
		if err != nil {
			e.log.Warn("NOTIFY lease", "error", err)
			return func() {}
		}
		if ok {
			return func() {
				rctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
				defer cancel()
				_ = e.eph.Release(rctx, key)
			}
		}
		if !e.clock.Now().Before(deadline) {
			return func() {}
		}
		select {
		case <-e.clock.After(leaseRetry):
		case <-ctx.Done():
			return func() {}
		}
	}
}

// failed says whether a NOTIFY's outcome ends its subscription (RFC 6665
// §4.2.2): no answer, 481, or another failure with no way to retry it (not a
// challenge, no Retry-After).
func failed(res uac.Response, err error) bool {
	switch {
	case err != nil || res.Synthesized != "" || res.StatusCode == 481:
		return true
	case res.StatusCode < 300 || res.StatusCode == 401 || res.StatusCode == 407:
		return false
	}
	return res.Response == nil || res.GetHeader("Retry-After") == nil
}

// terminate ends an expired subscription with its last NOTIFY.
// A refresh that came just before the expiry wins (the record is read
// again); an unsubscribe or a 481 that came first already ended it.
func (e *Events) terminate(ctx context.Context, s *store.Subscription, reason string) {
	if now, err := e.subs.Get(ctx, s.ID); err != nil || now.Expires.After(e.clock.Now()) {
		return
	}
	ended, err := e.subs.Delete(ctx, s.ID)
	if err != nil {
		if !errors.Is(err, store.ErrSubscriptionNotFound) {
			e.log.Warn("delete expired subscription", "id", s.ID, "error", err)
		}
		return
	}
	ended.State = "terminated"
	e.notify(ctx, ended, reason)
	e.ended(ended, reason)
}

// notifyWatchers sends the new state of resource to every subscription to pkg.
func (e *Events) notifyWatchers(ctx context.Context, pkg, resource string) {
	e.notifyWatchersWith(ctx, pkg, resource)
}

// notifyWatchersWith is notifyWatchers with the body with makes, when given.
// Up to fanOut dialogs' NOTIFYs are in flight at once (one PUBLISH to a
// resource with a thousand watchers is not a thousand round trips end to
// end); within a dialog one at a time, so its CSeqs arrive in order.
func (e *Events) notifyWatchersWith(ctx context.Context, pkg, resource string, with ...bodyFunc) {
	watchers, err := e.subs.Watchers(ctx, pkg, resource)
	if err != nil {
		e.log.Warn("watchers", "resource", resource, "error", err)
		return
	}
	var order []string
	dialogs := map[string][]*store.Subscription{}
	for _, s := range watchers {
		if !s.Expires.After(e.clock.Now()) {
			continue // the sweep's to end
		}
		key := s.CallID + ";" + s.LocalTag
		if dialogs[key] == nil {
			order = append(order, key)
		}
		dialogs[key] = append(dialogs[key], s)
	}
	slots := make(chan struct{}, fanOut)
	var wg sync.WaitGroup
	for _, key := range order {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			for _, s := range dialogs[key] {
				e.notify(ctx, s, "", with...)
			}
		}()
	}
	wg.Wait()
}

// notifyReceived answers a NOTIFY (RFC 6665 §4.1.3): 200 when it is in the
// dialog of a subscription the lab holds (its To tag ours, its Event that
// subscription's), 481 otherwise; either way it is published as an event.
func (e *Events) notifyReceived(r *sipbus.Request) {
	pkg, eventID, ok := eventHeader(r.Request)
	if !ok {
		e.refuse(r, 400, "Bad Request", "NOTIFY without an Event header (RFC 6665 §8.2.1)")
		return
	}
	state := ""
	if h := r.GetHeader("Subscription-State"); h != nil {
		state = h.Value()
	}
	toTag, _ := r.To().Params.Get("tag")
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	fromTag, _ := r.From().Params.Get("tag")
	s, err := e.subs.Get(ctx, store.SubscriptionID(r.CallID().Value(), toTag, pkg, eventID))
	matched := err == nil && toTag != "" && s.RemoteTag == fromTag
	ct := ""
	if h := r.ContentType(); h != nil {
		ct = h.Value()
	}
	e.announce(wire.StateEvent{Event: wire.EventNotifyReceived, Package: pkg, CallID: r.CallID().Value(), From: r.From().Address.String(),
		SubscriptionState: state, Matched: matched, ContentType: ct, Body: string(r.Body())})
	switch {
	case matched:
		e.reply(r, sip.NewResponseFromRequest(r.Request, 200, "OK", nil))
	case err != nil && !errors.Is(err, store.ErrSubscriptionNotFound):
		e.log.Error("subscription for NOTIFY", "error", err)
		e.refuse(r, 500, "Server Internal Error", "subscription store unavailable")
	default:
		e.refuse(r, 481, "Subscription Does Not Exist", "no subscription to "+pkg+" in this dialog")
	}
}
