package uas

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
)

// SIP extensions the uas honours: option tags (RFC 3261 §19.2) and session
// timers (RFC 4028).

// supportedTags lists the option tags cfg implements.
func supportedTags(cfg Config) []string {
	var tags []string
	if cfg.EnablePRACK {
		tags = append(tags, "100rel")
	}
	if cfg.EnableSessionTimers {
		tags = append(tags, "timer")
	}
	return append(tags, "replaces")
}

func has(r *sip.Request, header, tag string) bool {
	return sipmsg.HasOptionTag(r, header, tag)
}

// refuseExtensions answers 420 when r requires an option tag this
// configuration lacks (RFC 3261 §8.2.2.3), and reports whether it did.
func (u *UAS) refuseExtensions(r *sipbus.Request) bool {
	missing := sipmsg.Unsupported(r.Request, "Require", u.supportedTags)
	if len(missing) == 0 {
		return false
	}
	detail := "unsupported extension " + strings.Join(missing, ", ")
	if slices.Contains(missing, "100rel") {
		detail += " (reliable provisionals are off: --enable-prack=false)"
	}
	if slices.Contains(missing, "timer") {
		detail += " (session timers are off: --enable-session-timers=false)"
	}
	u.reply(r, 420, "Bad Extension", detail, sip.NewHeader("Unsupported", strings.Join(missing, ", ")))
	return true
}

// sessionTimer is what RFC 4028 negotiation settled for one request.
type sessionTimer struct {
	interval    int    // seconds; 0 when no session timer applies
	refresher   string // "uac" or "uas"
	uacSupports bool
}

// negotiateTimer reads Session-Expires and Min-SE (RFC 4028 §9). It answers 422
// itself when the interval is too small and then reports false.
func (u *UAS) negotiateTimer(r *sipbus.Request) (sessionTimer, bool) {
	if !u.cfg.EnableSessionTimers {
		return sessionTimer{}, true
	}
	st := sessionTimer{
		interval:    u.cfg.SessionExpires,
		uacSupports: has(r.Request, "Supported", "timer") || has(r.Request, "Require", "timer"),
	}
	minSE := strconv.Itoa(u.cfg.MinSE)
	if h := header(r.Request, "Session-Expires", "x"); h != "" {
		value, params, _ := strings.Cut(h, ";")
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil || n < 1 {
			u.reply(r, 400, "Bad Request", "Session-Expires "+strconv.Quote(h)+" is not delta-seconds")
			return st, false
		}
		if n < u.cfg.MinSE {
			u.reply(r, 422, "Session Interval Too Small", "Session-Expires "+value+" is below Min-SE "+minSE,
				sip.NewHeader("Min-SE", minSE))
			return st, false
		}
		st.interval = n
		for _, p := range strings.Split(params, ";") {
			if k, v, _ := strings.Cut(strings.TrimSpace(p), "="); strings.EqualFold(k, "refresher") {
				st.refresher = strings.ToLower(v)
			}
		}
	} else if h := header(r.Request, "Min-SE", ""); h != "" {
		// No interval asked for: ours, but not below what the UAC's proxies require.
		if n, err := strconv.Atoi(strings.TrimSpace(strings.Split(h, ";")[0])); err == nil && n > st.interval {
			st.interval = n
		}
	}
	// The UAC refreshes when it says so or when it supports timers and left the
	// choice to us; a UAC without timer support cannot, so this side does.
	if st.refresher != "uas" && st.uacSupports {
		st.refresher = "uac"
	} else {
		st.refresher = "uas"
	}
	return st, true
}

// header is the first value of name or its compact form.
func header(r *sip.Request, name, compact string) string {
	if h := r.GetHeader(name); h != nil {
		return h.Value()
	}
	if compact != "" {
		if h := r.GetHeader(compact); h != nil {
			return h.Value()
		}
	}
	return ""
}

// applyTimer starts (or restarts, on a refresh) st's session timer on d.
func (u *UAS) applyTimer(d *store.Dialog, st sessionTimer) {
	if st.interval == 0 {
		return
	}
	d.SessionExpires, d.Refresher, d.Refreshed = st.interval, st.refresher, u.now()
	d.Due = sessionDue(d)
	d.Expires = d.Refreshed.Add(time.Duration(d.SessionExpires)*time.Second + time.Minute)
}

// sessionDue is when the uas must act on d's session timer: refresh it at half
// the interval when it is the refresher, else end it when the interval is over
// less a margin for the refresh in flight (RFC 4028 §10).
func sessionDue(d *store.Dialog) time.Time {
	se := time.Duration(d.SessionExpires) * time.Second
	if d.Refresher == "uas" {
		return d.Refreshed.Add(se / 2)
	}
	return d.Refreshed.Add(se - min(32*time.Second, se/3))
}

// timerHeaders are a 2xx's Session-Expires (and Require: timer when the UAC
// refreshes, RFC 4028 §9).
func timerHeaders(st sessionTimer) []sip.Header {
	if st.interval == 0 {
		return nil
	}
	hs := []sip.Header{sip.NewHeader("Session-Expires", strconv.Itoa(st.interval)+";refresher="+st.refresher)}
	if st.uacSupports {
		hs = append(hs, sip.NewHeader("Require", "timer"))
	}
	return hs
}
