package edge

import (
	"bytes"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Why this is written by hand: sipgo's parser is deliberately lenient (it accepts
// most of RFC 4475's invalid messages so a proxy can pass them on), and it keeps
// no trace of the raw header lines. A test lab must tell a sender its message is
// malformed, so the edge checks each datagram against the RFC 3261 grammar for
// the fields it relies on before sipgo sees it, and answers 400/416/505 with a
// Warning that says what was wrong.

// verdict is a check's outcome: code 0 means the message may go on.
type verdict struct {
	code   int
	reason string // reason phrase
	detail string // Warning text: what exactly was wrong
}

func bad(detail string) verdict { return verdict{code: 400, reason: "Bad Request", detail: detail} }

var ok = verdict{}

// rawHeader is one unfolded header line; name is the canonical lower-case long form.
type rawHeader struct {
	name, value string
}

// rawMsg is a message split into lines, enough to check it and to answer it.
type rawMsg struct {
	request bool
	method  string
	uri     string
	headers []rawHeader
	body    []byte
}

func (m *rawMsg) all(name string) []string {
	var out []string
	for _, h := range m.headers {
		if h.name == name {
			out = append(out, h.value)
		}
	}
	return out
}

// compact maps RFC 3261 §7.3.3 (and extension) compact header names to long ones.
var compact = map[string]string{
	"v": "via", "f": "from", "t": "to", "i": "call-id", "l": "content-length", "c": "content-type",
	"m": "contact", "s": "subject", "k": "supported", "e": "content-encoding", "o": "event",
	"r": "refer-to", "u": "allow-events", "b": "referred-by", "x": "session-expires",
}

// splitRaw splits data into start line, unfolded headers and body. It keeps going
// past a malformed line, so that a bad request can still be answered; the
// verdict reports the first problem.
func splitRaw(data []byte) (*rawMsg, verdict) {
	first := ok
	end, sep := bytes.Index(data, []byte("\r\n\r\n")), 4
	if end < 0 {
		end, sep = bytes.Index(data, []byte("\n\n")), 2
	}
	m := &rawMsg{}
	if end < 0 {
		end, sep = len(data), 0
		first = bad("no empty line ends the headers")
	}
	m.body = data[end+sep:]
	lines := strings.Split(string(data[:end]), "\n")
	start := strings.TrimSuffix(lines[0], "\r")
	for _, line := range lines[1:] {
		line = strings.TrimSuffix(line, "\r")
		if line != "" && (line[0] == ' ' || line[0] == '\t') && len(m.headers) > 0 {
			m.headers[len(m.headers)-1].value += " " + strings.TrimSpace(line)
			continue
		}
		name, value, found := strings.Cut(line, ":")
		name = strings.TrimRight(name, " \t")
		if !found || !isToken(name) {
			if first.code == 0 {
				first = bad("malformed header line: " + clip(line))
			}
			continue
		}
		name = strings.ToLower(name)
		if long, ok := compact[name]; ok {
			name = long
		}
		m.headers = append(m.headers, rawHeader{name: name, value: strings.TrimSpace(value)})
	}
	var v verdict
	if strings.HasPrefix(start, "SIP/") {
		v = checkStatusLine(start)
		if v.code == 0 {
			v = m.check()
		}
	} else {
		m.request = true
		v = m.checkRequestLine(start)
	}
	if first.code != 0 && v.code == 0 {
		v = first
	}
	return m, v
}

func checkStatusLine(line string) verdict {
	parts := strings.SplitN(line, " ", 3)
	if len(parts) < 2 || len(parts[1]) != 3 {
		return bad("malformed status line")
	}
	code, err := strconv.Atoi(parts[1])
	if err != nil || code < 100 || code > 699 {
		return bad("status code out of range")
	}
	return ok
}

func (m *rawMsg) checkRequestLine(line string) verdict {
	parts := strings.Split(line, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return bad("Request-Line must be Method SP Request-URI SP SIP-Version, single spaces")
	}
	m.method, m.uri = parts[0], parts[1]
	if !isToken(m.method) {
		return bad("method is not a token")
	}
	if v := parts[2]; !strings.EqualFold(v, "SIP/2.0") {
		if len(v) > 4 && strings.EqualFold(v[:4], "SIP/") {
			return verdict{code: 505, reason: "Version Not Supported", detail: "only SIP/2.0 is supported"}
		}
		return bad("malformed SIP-Version")
	}
	return ok
}

// check applies the rules of RFC 3261 §8.2 and the grammar of §25 to the fields
// siphon uses, for requests and responses alike; checks run in the order RFC 4475
// expects (a CSeq mismatch is reported before an unknown method).
func (m *rawMsg) check() verdict {
	for _, name := range []string{"via", "from", "to", "call-id", "cseq"} {
		if len(m.all(name)) == 0 {
			return bad("missing required header " + name)
		}
	}
	for _, name := range []string{"from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type"} {
		if len(m.all(name)) > 1 {
			return bad("more than one " + name + " header")
		}
	}
	if v := checkCSeq(m.all("cseq")[0], m.method, m.request); v.code != 0 {
		return v
	}
	if m.request {
		if v := checkRequestURI(m.uri); v.code != 0 {
			return v
		}
	}
	for _, h := range m.headers {
		var v verdict
		switch h.name {
		case "via":
			v = checkVia(h.value)
		case "from", "to":
			v = checkAddress(h.name, h.value)
		case "contact":
			if h.value != "*" {
				v = checkAddressList(h.name, h.value)
			}
		case "route", "record-route":
			v = checkAddressList(h.name, h.value)
		case "content-type":
			v = checkContentType(h.value)
		case "max-forwards":
			v = checkNumber(h.name, h.value, 255)
		case "expires":
			v = checkNumber(h.name, h.value, 1<<32-1)
		case "content-length":
			v = checkNumber(h.name, h.value, 1<<31-1)
			if n, _ := strconv.Atoi(h.value); v.code == 0 && n > len(m.body) {
				v = bad("Content-Length larger than the message body")
			}
		case "date":
			// RFC 3261 §20.17: SIP-date is always GMT.
			if !strings.HasSuffix(h.value, " GMT") {
				v = bad("Date must be in GMT")
			}
		case "call-id":
			if h.value == "" || strings.ContainsAny(h.value, " \t") {
				v = bad("malformed Call-ID")
			}
		}
		if v.code != 0 {
			return v
		}
	}
	return ok
}

func checkCSeq(value, method string, request bool) verdict {
	f := strings.Fields(value)
	if len(f) != 2 {
		return bad("CSeq must be a number and a method")
	}
	if v := checkNumber("cseq", f[0], 1<<31-1); v.code != 0 {
		return v
	}
	if request && f[1] != method {
		return bad("CSeq method does not match the request method")
	}
	return ok
}

func checkNumber(name, value string, max uint64) verdict {
	if value == "" || strings.Trim(value, "0123456789") != "" {
		return bad(name + " is not a number")
	}
	n, err := strconv.ParseUint(value, 10, 64)
	if err != nil || n > max {
		return bad(name + " is too large")
	}
	return ok
}

// checkRequestURI answers 416 for a scheme siphon cannot route, and 400 for a
// SIP URI carrying headers (RFC 3261 §19.1.5: not allowed in a Request-URI).
func checkRequestURI(uri string) verdict {
	scheme, rest, found := strings.Cut(uri, ":")
	if !found || !isScheme(scheme) || rest == "" {
		return bad("malformed Request-URI (a bare absoluteURI, no <>)")
	}
	switch strings.ToLower(scheme) {
	case "sip", "sips":
		hostPart := rest[strings.LastIndexByte(rest, '@')+1:]
		if strings.Contains(hostPart, "?") {
			return bad("Request-URI must not carry headers")
		}
		hostport, _, _ := strings.Cut(hostPart, ";")
		if !validHostPort(hostport) {
			return bad("Request-URI host is not a hostname, IPv4 address or [IPv6 reference] (RFC 5118)")
		}
	case "tel":
	default:
		return verdict{code: 416, reason: "Unsupported URI Scheme", detail: "scheme " + scheme + " is not supported"}
	}
	return ok
}

// checkVia checks each via-parm: sent-protocol SP sent-by *(; via-params).
func checkVia(value string) verdict {
	for _, parm := range splitOutside(value, ',') {
		proto, params, _ := strings.Cut(parm, ";")
		if strings.Contains(parm, ";") {
			params = ";" + params
		}
		p := strings.SplitN(proto, "/", 3)
		if len(p) != 3 || strings.TrimSpace(p[0]) == "" || strings.TrimSpace(p[1]) == "" {
			return bad("malformed Via sent-protocol")
		}
		if f := strings.Fields(p[2]); len(f) != 2 || !validHostPort(f[1]) {
			return bad("malformed Via sent-by")
		}
		if v := checkParams("via", params); v.code != 0 {
			return v
		}
	}
	return ok
}

// checkAddressList checks a comma list of addresses (Contact, Route).
func checkAddressList(name, value string) verdict {
	for _, a := range splitOutside(value, ',') {
		if v := checkAddress(name, a); v.code != 0 {
			return v
		}
	}
	return ok
}

// checkAddress checks ( name-addr / addr-spec ) *( SEMI params ), RFC 3261 §20.10.
func checkAddress(name, value string) verdict {
	v := strings.TrimSpace(value)
	if v == "" {
		return bad("empty " + name)
	}
	var uri, params string
	lt := strings.IndexByte(v, '<')
	switch {
	case v[0] == '"':
		end := quotedEnd(v)
		if end < 0 {
			return bad("unterminated quoted string in " + name)
		}
		rest := strings.TrimLeft(v[end:], " \t")
		if rest == "" || rest[0] != '<' {
			return bad("display name in " + name + " must be followed by <URI>")
		}
		lt = len(v) - len(rest)
		fallthrough
	case lt >= 0:
		if v[0] != '"' {
			for _, word := range strings.Fields(v[:lt]) {
				if !isToken(word) {
					return bad("display name in " + name + " must be a token or a quoted string")
				}
			}
		}
		gt := strings.IndexByte(v[lt:], '>')
		if gt < 0 {
			return bad("unterminated <URI> in " + name)
		}
		uri, params = v[lt+1:lt+gt], v[lt+gt+1:]
		if strings.ContainsAny(uri, " \t") {
			return bad("spaces inside <URI> in " + name)
		}
	default:
		// addr-spec: a ';' starts the header's parameters, and the URI may carry
		// neither spaces, commas nor '?headers' (RFC 3261 §20.10).
		uri, params, _ = strings.Cut(v, ";")
		if strings.Contains(v, ";") {
			params = ";" + params
		}
		uri = strings.TrimSpace(uri)
		if strings.ContainsAny(uri, " \t,?") {
			return bad("URI in " + name + " must be enclosed in <> (it has spaces, commas or headers)")
		}
	}
	if scheme, rest, found := strings.Cut(uri, ":"); !found || !isScheme(scheme) || rest == "" {
		return bad("malformed URI in " + name)
	} else if s := strings.ToLower(scheme); (s == "sip" || s == "sips") && !validSIPURI(rest) {
		return bad("malformed SIP URI in " + name + " (RFC 3261 §19.1.1: [user[:password]@]host[:port])")
	}
	return checkParams(name, params)
}

// validSIPURI checks what follows "sip:": an optional userinfo (a user, at
// most one ':' and a password) before the last '@', then a host and port the
// roles' parser takes.
func validSIPURI(rest string) bool {
	// A user may hold '?' and ';' (user-unreserved), headers no bare '@':
	// the last '@' ends the userinfo.
	at := strings.LastIndexByte(rest, '@')
	if at >= 0 {
		if userinfo := rest[:at]; userinfo == "" || userinfo[0] == ':' || strings.Count(userinfo, ":") > 1 {
			return false
		}
	}
	hostport := rest[at+1:]
	if i := strings.IndexAny(hostport, ";?"); i >= 0 {
		hostport = hostport[:i]
	}
	return validHostPort(hostport)
}

// checkContentType checks media-type: m-type "/" m-subtype *( SEMI m-parameter )
// (RFC 3261 §20.15); an empty one is no media type.
func checkContentType(value string) verdict {
	mt, params, _ := strings.Cut(value, ";")
	if strings.Contains(value, ";") {
		params = ";" + params
	}
	typ, sub, found := strings.Cut(strings.TrimSpace(mt), "/")
	if !found || !isToken(strings.TrimSpace(typ)) || !isToken(strings.TrimSpace(sub)) {
		return bad("Content-Type must be type/subtype")
	}
	return checkParams("content-type", params)
}

// checkParams checks *( SEMI token [ EQUAL value ] ): no empty parameters.
func checkParams(name, params string) verdict {
	params = strings.TrimSpace(params)
	if params == "" {
		return ok
	}
	if params[0] != ';' {
		return bad("unexpected text after " + name + " value")
	}
	for _, p := range splitOutside(params[1:], ';') {
		key, _, _ := strings.Cut(p, "=")
		if !isToken(strings.TrimSpace(key)) {
			return bad("empty or malformed parameter in " + name)
		}
	}
	return ok
}

// validHostPort checks host [ ":" port ]: a hostname or IPv4 address, or an IPv6
// address inside [] (RFC 3261 §25.1 as corrected by RFC 5118 §4.10).
func validHostPort(hp string) bool {
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return false
		}
		host, port = hp[1:end], strings.TrimPrefix(hp[end+1:], ":")
		if ip := net.ParseIP(host); ip == nil || !strings.Contains(host, ":") || (hp[end+1:] != "" && port == "") {
			return false
		}
	} else {
		var found bool
		host, port, found = strings.Cut(hp, ":")
		if found && port == "" {
			return false
		}
		if host == "" || strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != "" {
			return false
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		return err == nil && n > 0 && n <= 65535
	}
	return true
}

// splitOutside splits s on sep where sep is outside quotes and <>.
func splitOutside(s string, sep byte) []string {
	var out []string
	quoted, angle, escaped := false, false, false
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case !quoted && c == '<':
			angle = true
		case !quoted && c == '>':
			angle = false
		case !quoted && !angle && c == sep:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// quotedEnd returns the index just past the quoted string s starts with, or -1.
func quotedEnd(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// isScheme reports whether s is a URI scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !alpha && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// isToken reports whether s is an RFC 3261 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0) {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// checkParsed applies the checks that need a parsed request, on every transport
// (stream transports do not pass through the raw check).
func checkParsed(req *sip.Request) verdict {
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return verdict{code: 505, reason: "Version Not Supported", detail: "only SIP/2.0 is supported"}
	}
	for _, name := range []string{"From", "To", "Call-ID", "CSeq", "Via"} {
		if req.GetHeader(name) == nil {
			return bad("missing required header " + strings.ToLower(name))
		}
	}
	if cseq := req.CSeq(); cseq.MethodName != req.Method {
		return bad("CSeq method does not match the request method")
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() > 255 {
		return bad("max-forwards is too large")
	}
	switch strings.ToLower(req.Recipient.Scheme) {
	case "sip", "sips", "tel":
	default:
		return verdict{code: 416, reason: "Unsupported URI Scheme", detail: "scheme " + req.Recipient.Scheme + " is not supported"}
	}
	return ok
}

// rawResponse builds the answer to a request too malformed for sipgo: a status
// line, the request's Via, From, To, Call-ID and CSeq as they came, a To tag,
// and a Warning with the detail. It returns nil when the request has no Via,
// since a response without one cannot be routed.
func rawResponse(m *rawMsg, v verdict, warnAgent, toTag string, extra ...string) []byte {
	vias := m.all("via")
	if len(vias) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("SIP/2.0 " + strconv.Itoa(v.code) + " " + v.reason + "\r\n")
	for _, via := range vias {
		b.WriteString("Via: " + via + "\r\n")
	}
	for _, name := range []string{"From", "To", "Call-ID", "CSeq"} {
		for _, val := range m.all(strings.ToLower(name)) {
			if name == "To" && !strings.Contains(strings.ToLower(val), "tag=") {
				val += ";tag=" + toTag
			}
			b.WriteString(name + ": " + val + "\r\n")
		}
	}
	b.WriteString("Warning: 399 " + warnAgent + " \"" + strings.ReplaceAll(v.detail, `"`, "'") + "\"\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}
