package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// publish serves PUBLISH as an event state compositor (RFC 3903 §6, its
// steps in order): an initial publication, a refresh (SIP-If-Match, no
// body), a modify (SIP-If-Match and a body) or a remove (SIP-If-Match,
// Expires: 0). Each success gets a new entity-tag; a change of state is then
// NOTIFYed to every watcher of the resource's package.
func (e *Events) publish(r *sipbus.Request) {
	// Step 1: the resource is the Request-URI's address-of-record.
	resource, _, err := sipmsg.AddressOfRecord(r.Recipient)
	if err != nil {
		e.refuse(r, 404, "Not Found", "no such resource: "+err.Error())
		return
	}
	// Step 2: a package that takes publications (§4.1.2).
	pkg, _, ok := eventHeader(r.Request)
	if !ok || packages[pkg] == nil || packages[pkg].publish == nil {
		e.refuse(r, 489, "Bad Event", "PUBLISH takes Event: "+strings.Join(publishable(), ", "),
			sip.NewHeader("Allow-Events", strings.Join(publishable(), ", ")))
		return
	}
	ifMatch := ""
	if h := r.GetHeader("SIP-If-Match"); h != nil {
		ifMatch = strings.TrimSpace(h.Value())
	}
	body := r.Body()
	if ifMatch == "" && len(body) == 0 {
		e.refuse(r, 400, "Bad Request", "an initial PUBLISH carries the state (RFC 3903 §6 step 6)")
		return
	}
	// Step 5: the expiry, by the same bounds as a subscription's.
	expires, ok := e.expires(r)
	if !ok {
		return
	}
	// Step 6: the body, checked by its package.
	contentType := ""
	if len(body) > 0 {
		if ct := r.ContentType(); ct != nil {
			contentType = strings.ToLower(strings.TrimSpace(strings.SplitN(ct.Value(), ";", 2)[0]))
		}
		p := packages[pkg].publish
		if contentType != p.contentType {
			e.refuse(r, 415, "Unsupported Media Type", pkg+" is published as "+p.contentType, sip.NewHeader("Accept", p.contentType))
			return
		}
		if err := p.check(body); err != nil {
			e.refuse(r, 400, "Bad Request", pkg+" body: "+err.Error())
			return
		}
	}
	if ifMatch == "" && expires == 0 {
		// State that expires at once: nothing is kept, nobody notified.
		e.published200(r, e.ids.ETag(), 0)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	etag, err := e.keepState(ctx, resource, pkg, ifMatch, contentType, string(body), expires)
	if errors.Is(err, errLostRace) {
		// The state stored for a moment may have gone to watchers: they
		// get the state that won.
		e.notifyWatchersLater(pkg, resource)
	}
	switch {
	case errors.Is(err, store.ErrPublicationNotFound):
		// Step 4: an entity-tag this compositor does not hold for the resource.
		e.refuse(r, 412, "Conditional Request Failed", "no publication with entity-tag "+ifMatch+" for "+resource)
		return
	case err != nil:
		e.log.Error("store publication", "resource", resource, "error", err)
		e.refuse(r, 500, "Server Internal Error", "publication store unavailable")
		return
	}
	if etag == "" { // removed: §6 step 8 still wants an entity-tag
		etag = e.ids.ETag()
	}
	e.published200(r, etag, expires)
	switch {
	case expires == 0:
		e.announce(wire.StateEvent{Event: wire.EventPublicationRemoved, Package: pkg, Resource: resource, ETag: ifMatch})
	case len(body) > 0:
		e.announce(wire.StateEvent{Event: wire.EventPublished, Package: pkg, Resource: resource, ETag: etag, ContentType: contentType, Body: string(body)})
	}
	if len(body) > 0 || expires == 0 { // not a refresh: the state changed
		e.notifyWatchersLater(pkg, resource)
	}
}

// published200 answers a PUBLISH 200 with its entity-tag and expiry (§6 step 8).
func (e *Events) published200(r *sipbus.Request, etag string, expires int) {
	res := sip.NewResponseFromRequest(r.Request, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("SIP-ETag", etag))
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	e.reply(r, res)
}

// notifyWatchersLater hands the NOTIFYs of resource's new state to the notifiers.
func (e *Events) notifyWatchersLater(pkg, resource string) {
	e.enqueue(func() {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		e.notifyWatchers(ctx, pkg, resource)
	})
}

// errLostRace: of two PUBLISHes naming one entity-tag, the other took it.
var errLostRace = fmt.Errorf("events: publication replaced meanwhile: %w", store.ErrPublicationNotFound)

// keepState makes the publication the PUBLISH asks for and returns its new
// entity-tag ("" once removed). A refresh or a modify stores the state under a
// new entity-tag before removing the old one, so a watcher never sees the
// state missing; of two racing, the one whose removal fails gives way (412).
func (e *Events) keepState(ctx context.Context, resource, pkg, ifMatch, contentType, body string, expires int) (string, error) {
	pubs := e.pubs
	var old *store.Publication
	if ifMatch != "" {
		var err error
		if old, err = pubs.Get(ctx, ifMatch); err != nil {
			return "", err
		}
		if old.Resource != resource || old.Event != pkg || !old.Expires.After(e.clock.Now()) {
			return "", store.ErrPublicationNotFound
		}
		if expires == 0 {
			_, err := pubs.Delete(ctx, ifMatch)
			return "", err
		}
	}
	now := e.clock.Now()
	p := &store.Publication{ETag: e.ids.ETag(), Event: pkg, Resource: resource, ContentType: contentType, Body: body,
		Published: now, Expires: now.Add(time.Duration(expires) * time.Second)}
	if old != nil && body == "" { // a refresh: the same state, longer
		p.ContentType, p.Body, p.Published = old.ContentType, old.Body, old.Published
	}
	if err := pubs.Create(ctx, p); err != nil {
		return "", err
	}
	if old != nil {
		if _, err := pubs.Delete(ctx, old.ETag); err != nil {
			_, _ = pubs.Delete(ctx, p.ETag)
			if errors.Is(err, store.ErrPublicationNotFound) {
				return "", errLostRace
			}
			return "", err
		}
	}
	return p.ETag, nil
}

// published is the newest live publication of pkg for resource, or nil. A
// compositor's policy is its own (RFC 3903 §4.3): the newest state wins; the
// tuples of several devices are not merged.
func (e *Events) published(ctx context.Context, pkg, resource string) (*store.Publication, error) {
	ps, err := e.pubs.Published(ctx, pkg, resource)
	if err != nil {
		return nil, err
	}
	var newest *store.Publication
	for _, p := range ps {
		if p.Expires.After(e.clock.Now()) && (newest == nil || p.Published.After(newest.Published)) {
			newest = p
		}
	}
	return newest, nil
}

// lapse removes publications that expired (the store hands each to one
// replica) and tells their resources' watchers the state without them.
func (e *Events) lapse(ctx context.Context) {
	expired, err := e.pubs.Expired(ctx, e.clock.Now(), 100)
	if err != nil {
		e.log.Warn("expired publications", "error", err)
	}
	for _, p := range expired {
		if _, err := e.pubs.Delete(ctx, p.ETag); err != nil {
			continue // refreshed or removed meanwhile
		}
		e.announce(wire.StateEvent{Event: wire.EventPublicationRemoved, Package: p.Event, Resource: p.Resource, ETag: p.ETag, Reason: "expired"})
		e.notifyWatchersLater(p.Event, p.Resource)
	}
}

// publishable lists the packages that take PUBLISH.
func publishable() []string {
	var out []string
	for _, name := range packageNames() {
		if packages[name].publish != nil {
			out = append(out, name)
		}
	}
	return out
}
