package sipmsg

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/ids"
)

// What an element that forwards requests checks and changes (RFC 3261 §16.3,
// §16.6): Max-Forwards and loop detection.

// DefaultMaxForwards is what a request without Max-Forwards gets (§16.6 step 3).
const DefaultMaxForwards = 70

// TakeHop applies §16.3 step 3 and §16.6 step 3 to a request about to be
// forwarded: false when Max-Forwards is 0 (the request gets 483 Too Many Hops,
// or an OPTIONS addressed here may be answered instead); otherwise it is
// decremented, or set to 70 when absent.
func TakeHop(r *sip.Request) bool {
	mf := r.MaxForwards()
	if mf == nil {
		h := sip.MaxForwardsHeader(DefaultMaxForwards)
		r.AppendHeader(&h)
		return true
	}
	if mf.Val() == 0 {
		return false
	}
	mf.Dec()
	return true
}

// LoopKey is the part of a branch that a forwarding element derives from the
// request (§16.6 step 8, for the loop check of §16.3 step 4): a hash of what a
// looping request keeps and a spiralling one changes — the Request-URI, From
// tag, To tag, Call-ID, CSeq number, the top Via as received, and any
// Proxy-Require, Proxy-Authorization and Route values.
func LoopKey(r *sip.Request) string {
	top := ""
	if v := r.Via(); v != nil {
		top = v.Value()
	}
	return loopKey(r, top)
}

func loopKey(r *sip.Request, topVia string) string {
	h := sha256.New()
	write := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	write(r.Recipient.String())
	if f := r.From(); f != nil {
		t, _ := f.Params.Get("tag")
		write(t)
	}
	if to := r.To(); to != nil {
		t, _ := to.Params.Get("tag")
		write(t)
	}
	if c := r.CallID(); c != nil {
		write(c.Value())
	}
	if c := r.CSeq(); c != nil {
		write(strconv.FormatUint(uint64(c.SeqNo), 10))
	}
	write(topVia)
	for _, name := range []string{"Proxy-Require", "Proxy-Authorization", "Route"} {
		for _, hdr := range r.GetHeaders(name) {
			write(hdr.Value())
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Branch is a forwarding element's branch for a request whose LoopKey (as
// received) is key: the magic cookie, the key and a per-branch part, so that
// Looped recognises the request when it comes back.
func Branch(key string, gen *ids.Generator) string {
	return ids.BranchCookie + key + "." + gen.Tag()
}

// Looped applies §16.3 step 4 to r as received: it has looped when one of its
// Via headers has a sent-by this element puts in requests (ours) and a branch
// made by Branch from a request identical to r in every loop-relevant part,
// the Via below ours being the top Via r had then. Our sent-by with another key
// is a spiral (retargeted on the way), which is legitimate.
func Looped(r *sip.Request, ours func(sentBy string) bool) bool {
	vias := r.GetHeaders("Via")
	for i, h := range vias {
		via, ok := h.(*sip.ViaHeader)
		if !ok || i+1 == len(vias) {
			continue
		}
		sentBy := via.Host
		if via.Port != 0 {
			sentBy += ":" + strconv.Itoa(via.Port)
		}
		if !ours(sentBy) {
			continue
		}
		branch, _ := via.Params.Get("branch")
		key, _, found := strings.Cut(strings.TrimPrefix(branch, ids.BranchCookie), ".")
		if found && key == loopKey(r, vias[i+1].Value()) {
			return true
		}
	}
	return false
}
