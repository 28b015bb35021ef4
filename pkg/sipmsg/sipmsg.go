// Package sipmsg builds the SIP messages every role and the edge make the same way.
package sipmsg

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/ids"
)

// NewResponse is sipgo's NewResponseFromRequest (RFC 3261 §8.2.6) with the To tag
// drawn from gen, so SIPHON_ID_SEED makes it reproducible. Responses of one
// request that must share a tag (1xx then 2xx) are built by the role that keeps it.
func NewResponse(req *sip.Request, code int, reason string, body []byte, gen *ids.Generator) *sip.Response {
	hadTag := false
	if to := req.To(); to != nil {
		hadTag = to.Params.Has("tag")
	}
	res := sip.NewResponseFromRequest(req, code, reason, body)
	if !hadTag && code > 100 {
		if to := res.To(); to != nil {
			to.Params.Add("tag", gen.Tag())
		}
	}
	return res
}

// Refusal is a response a role makes itself (NewResponse), with hdrs and,
// when detail is set, a Warning from agent saying exactly what was wrong.
func Refusal(req *sip.Request, code int, reason, agent, detail string, gen *ids.Generator, hdrs ...sip.Header) *sip.Response {
	res := NewResponse(req, code, reason, nil, gen)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if detail != "" {
		res.AppendHeader(Warning(agent, detail))
	}
	return res
}

// Warning is a Warning header (RFC 3261 §20.43) with code 399, naming agent and
// saying text: how siphon tells a sender what exactly was wrong.
func Warning(agent, text string) sip.Header {
	return sip.NewHeader("Warning", `399 `+agent+` "`+strings.ReplaceAll(text, `"`, "'")+`"`)
}

// headerList is the part of sip.Request and sip.Response ReplaceHeaders needs.
type headerList interface {
	GetHeaders(name string) []sip.Header
	RemoveHeader(name string) bool
	AppendHeader(h sip.Header)
}

// ReplaceHeaders takes every header called name off m, whatever the case it
// came in (sipgo's RemoveHeader removes the first one of the exact name only,
// while GetHeaders ignores case), and appends values in order under name.
func ReplaceHeaders(m headerList, name string, values ...string) {
	for _, h := range m.GetHeaders(name) {
		for m.RemoveHeader(h.Name()) {
		}
	}
	for _, v := range values {
		m.AppendHeader(sip.NewHeader(name, v))
	}
}
