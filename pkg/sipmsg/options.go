package sipmsg

import (
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Option tags (RFC 3261 §19.2, §20.32, §20.37, §20.40): every role reads
// Require, Supported and Proxy-Require the same way, through these.

// compact are the compact forms of the option-tag headers (RFC 3261 §7.3.3).
var compact = map[string]string{"Supported": "k"}

// OptionTags is every tag of the header named name (and its compact form) in
// r, lower-cased, in order: one line or several, comma lists or not.
func OptionTags(r *sip.Request, name string) []string {
	var out []string
	collect := func(hs []sip.Header) {
		for _, h := range hs {
			for _, t := range strings.Split(h.Value(), ",") {
				if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
					out = append(out, t)
				}
			}
		}
	}
	collect(r.GetHeaders(name))
	if c, ok := compact[name]; ok {
		collect(r.GetHeaders(c))
	}
	return out
}

// HasOptionTag reports whether the header named name in r lists tag.
func HasOptionTag(r *sip.Request, name, tag string) bool {
	return slices.Contains(OptionTags(r, name), strings.ToLower(tag))
}

// Unsupported lists the tags the header named name (Require, Proxy-Require)
// asks for that supported lacks: what a 420 Bad Extension names in its
// Unsupported header (RFC 3261 §8.2.2.3).
func Unsupported(r *sip.Request, name string, supported []string) []string {
	var missing []string
	for _, t := range OptionTags(r, name) {
		if !slices.Contains(supported, t) && !slices.Contains(missing, t) {
			missing = append(missing, t)
		}
	}
	return missing
}
