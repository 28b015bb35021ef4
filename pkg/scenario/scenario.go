// Package scenario reads and runs siphond's scripted call flows: JSON files
// of steps (send, sleep, expect) that go out through the edge's send path
// with real transactions and dialogs.
package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Scenario is siphond's scenario file: the steps of one party, or Actors,
// each a party with its own address whose steps run beside the others'.
type Scenario struct {
	// LocalURI is the From of every request; ContactURI its Contact.
	LocalURI   string `json:"local_uri"`
	ContactURI string `json:"contact_uri"`
	// DefaultTransport is a step's transport when it names none: udp, tcp,
	// tls, ws or wss.
	DefaultTransport string `json:"default_transport"`
	// Auth answers a 401 or 407 by itself: the request again with its
	// digest (a step's own Auth wins).
	Auth  *Auth  `json:"auth,omitempty"`
	Steps []Step `json:"steps,omitempty"`
	// Actors are the parties of a scenario of several (the fields above are
	// then their defaults). Parse makes a one-party scenario one actor too.
	Actors []Actor `json:"actors,omitempty"`
}

// Actor is one party: its own edge (Bind), URIs and steps. Its barrier
// steps wait for every actor that has a barrier of the same name.
type Actor struct {
	// Name names the actor in results and for `siphond --role scenario
	// --scenario-actor`.
	Name string `json:"name"`
	// Bind is the host:port its edge listens on, UDP and TCP (port 0: any
	// free one, ${local_addr} says which). Empty: the run's transport flags.
	Bind             string `json:"bind,omitempty"`
	LocalURI         string `json:"local_uri,omitempty"`
	ContactURI       string `json:"contact_uri,omitempty"`
	DefaultTransport string `json:"default_transport,omitempty"`
	Auth             *Auth  `json:"auth,omitempty"`
	Steps            []Step `json:"steps"`
}

// Parties is how many actors have a barrier named name.
func (sc *Scenario) Parties(name string) int {
	n := 0
	for _, a := range sc.Actors {
		for _, st := range a.Steps {
			if st.Type == "barrier" && st.Name == name {
				n++
				break
			}
		}
	}
	return n
}

// Actor is the actor named name, or nil.
func (sc *Scenario) Actor(name string) *Actor {
	for i := range sc.Actors {
		if sc.Actors[i].Name == name {
			return &sc.Actors[i]
		}
	}
	return nil
}

// Auth is digest credentials (RFC 8760: MD5, SHA-256, SHA-512-256).
type Auth struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Step is one step, tagged by Type.
type Step struct {
	Type string `json:"type"`
	// send: a request of Method to URI with Headers and Body, over Transport.
	Method    string   `json:"method,omitempty"`
	URI       string   `json:"uri,omitempty"`
	Headers   []Header `json:"headers,omitempty"`
	Body      string   `json:"body,omitempty"`
	Transport string   `json:"transport,omitempty"`
	// sleep: MS milliseconds.
	MS int `json:"ms,omitempty"`
	// expect: the last send's final response has Status, a code (200) or a
	// class ("2xx").
	Status json.RawMessage `json:"status,omitempty"`
	// register: a REGISTER for User at the registrar URI (From and To
	// sip:User@its host, Contact the scenario's, Expires).
	User    string `json:"user,omitempty"`
	Expires *int   `json:"expires,omitempty"`
	// Auth, when set, answers this step's 401 or 407.
	Auth *Auth `json:"auth,omitempty"`
	// from is a register step's address-of-record (its From and To).
	from string
	// expect with Request instead of Status: the next request of that
	// method that comes to this scenario, within TimeoutMS (10 s when 0).
	Request   string `json:"request,omitempty"`
	TimeoutMS int    `json:"timeout_ms,omitempty"`
	// An expect's Headers and Body are regular expressions the response (or
	// request) must match; Optional makes its failure no failure.
	Optional bool `json:"optional,omitempty"`
	// respond: Status (and Reason, Headers, Body) to the request last expected.
	Reason string `json:"reason,omitempty"`
	// barrier: Name, waited at until every actor with a barrier of that name
	// is there (within TimeoutMS, 30 s when 0).
	Name string `json:"name,omitempty"`
	// respond after an expected CANCEL answers the INVITE it cancels (the
	// edge has answered the CANCEL 200 itself, RFC 3261 §9.2).
	// repeat: Steps, Count times (flattened on load).
	Count int    `json:"count,omitempty"`
	Steps []Step `json:"steps,omitempty"`
	// capture: Regex (its first group, or the whole match) from the last
	// response's Header, or its body when Header is empty, into Var: later
	// steps read it as ${Var}.
	Header string `json:"header,omitempty"`
	Regex  string `json:"regex,omitempty"`
	Var    string `json:"var,omitempty"`
}

// Header is one header a send step adds.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

var transports = map[string]bool{"udp": true, "tcp": true, "tls": true, "ws": true, "wss": true}

// validName is a variable's name.
var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Load reads and checks the scenario file at path; its errors name the file,
// and the line and the field that is wrong.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return ParseFile(path, data)
}

// ParseFile reads and checks data, the file at path (YAML by its extension).
func ParseFile(path string, data []byte) (*Scenario, error) {
	var err error
	src := data
	if strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml") {
		if data, err = yamlToJSON(data); err != nil {
			return nil, fmt.Errorf("scenario %s: %w", path, err)
		}
	}
	sc, err := parse(data, src)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return sc, nil
}

// yamlToJSON reads the YAML form: the same fields as the JSON's, checked the
// same way once turned into JSON.
func yamlToJSON(data []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err // yaml's errors name the line
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not JSON-shaped YAML: %w", err)
	}
	return out, nil
}

// Parse reads and checks a scenario.
func Parse(data []byte) (*Scenario, error) { return parse(data, data) }

// parse reads the JSON data of src (the file as written, JSON or YAML: the
// lines errors name are its lines).
func parse(data, src []byte) (*Scenario, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return nil, fmt.Errorf("line %d: %v", line(data, syntax.Offset), err)
		case errors.As(err, &typ) && !bytes.Contains(data, []byte("\n")):
			return nil, fmt.Errorf("field %s: want %s, not %s", typ.Field, typ.Type, typ.Value)
		case errors.As(err, &typ):
			return nil, fmt.Errorf("line %d: field %s: want %s, not %s", line(data, typ.Offset), typ.Field, typ.Type, typ.Value)
		}
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			if n := lineOfKey(src, m[1]); n > 0 {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
		}
		return nil, err // an unknown field: the decoder names it
	}
	if err := sc.check(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			if n := lineOf(src, fe.path); n > 0 {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
		}
		return nil, err
	}
	return &sc, nil
}

// fieldError is a value that is wrong, at path (keys and indexes) in the file.
type fieldError struct {
	path []any
	err  error
}

func (e *fieldError) Error() string {
	var b strings.Builder
	for i, p := range e.path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, p)
		}
	}
	return "field " + b.String() + ": " + e.err.Error()
}

func (e *fieldError) Unwrap() error { return e.err }

func wrong(path []any, format string, args ...any) error {
	return &fieldError{path: path, err: fmt.Errorf(format, args...)}
}

// check fills the defaults and checks every field; a one-party scenario
// becomes one actor.
func (sc *Scenario) check() error {
	if sc.DefaultTransport == "" {
		sc.DefaultTransport = "udp"
	}
	if !transports[strings.ToLower(sc.DefaultTransport)] {
		return wrong([]any{"default_transport"}, "%q, want udp, tcp, tls, ws or wss", sc.DefaultTransport)
	}
	if sc.LocalURI == "" {
		sc.LocalURI = "sip:scenario@localhost"
	}
	if sc.Auth != nil && sc.Auth.Username == "" {
		return wrong([]any{"auth", "username"}, "want the user to authenticate as")
	}
	var base []any // where an actor's fields are in the file
	switch {
	case len(sc.Actors) > 0 && len(sc.Steps) > 0:
		return wrong([]any{"steps"}, "give steps, or actors each with its steps, not both")
	case len(sc.Actors) == 0 && len(sc.Steps) == 0:
		return wrong([]any{"steps"}, "no steps")
	case len(sc.Actors) == 0:
		sc.Actors, sc.Steps = []Actor{{Steps: sc.Steps}}, nil
	default:
		base = []any{"actors"}
	}
	names := map[string]bool{}
	for i := range sc.Actors {
		a := &sc.Actors[i]
		at := func(field ...any) []any {
			if base == nil {
				return field
			}
			return append([]any{"actors", i}, field...)
		}
		if base != nil {
			if !validName.MatchString(a.Name) || names[a.Name] {
				return wrong(at("name"), "%q: want a name of letters, digits and _, one per actor", a.Name)
			}
			names[a.Name] = true
		}
		if a.Bind != "" {
			if _, port, err := net.SplitHostPort(a.Bind); err != nil || port == "" {
				return wrong(at("bind"), "%q: want host:port (port 0: any free one)", a.Bind)
			}
		}
		a.LocalURI = orDefault(a.LocalURI, sc.LocalURI)
		a.ContactURI = orDefault(a.ContactURI, sc.ContactURI)
		a.DefaultTransport = orDefault(a.DefaultTransport, sc.DefaultTransport)
		if !transports[strings.ToLower(a.DefaultTransport)] {
			return wrong(at("default_transport"), "%q, want udp, tcp, tls, ws or wss", a.DefaultTransport)
		}
		if a.Auth == nil {
			a.Auth = sc.Auth
		}
		if a.Auth != nil && a.Auth.Username == "" {
			return wrong(at("auth", "username"), "want the user to authenticate as")
		}
		if len(a.Steps) == 0 {
			return wrong(at("steps"), "no steps")
		}
		for j := range a.Steps {
			if err := a.Steps[j].check(); err != nil {
				return &fieldError{path: at("steps", j), err: err}
			}
		}
		a.Steps = flatten(a.Steps)
	}
	return nil
}

// unknownField is the decoder's error for a field no struct has.
var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// lineOfKey is the first line of src where key is a key, JSON or YAML, or 0.
func lineOfKey(src []byte, key string) int {
	re := regexp.MustCompile(`(?m)("` + regexp.QuoteMeta(key) + `"\s*:|^\s*-?\s*` + regexp.QuoteMeta(key) + `\s*:)`)
	if loc := re.FindIndex(src); loc != nil {
		return line(src, int64(loc[0]))
	}
	return 0
}

// lineOf is the line of the value at path in src (JSON is YAML: one parser
// finds it in either), or 0.
func lineOf(src []byte, path []any) int {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 {
		return 0
	}
	n := doc.Content[0]
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
			}
		case string:
			for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
		}
		if next == nil {
			return n.Line
		}
		n = next
	}
	return n.Line
}

// flatten puts each repeat's steps in its place, Count times.
func flatten(steps []Step) []Step {
	var out []Step
	for _, s := range steps {
		if s.Type != "repeat" {
			out = append(out, s)
			continue
		}
		inner := flatten(s.Steps)
		for range s.Count {
			out = append(out, inner...)
		}
	}
	return out
}

func (s *Step) check() error {
	if s.Auth != nil && s.Auth.Username == "" {
		return errors.New("auth.username: want the user to authenticate as")
	}
	switch s.Type {
	case "send":
		if s.Method == "" || strings.ToUpper(s.Method) != s.Method {
			return fmt.Errorf("(send) method %q: want a SIP method in capitals", s.Method)
		}
		if !strings.HasPrefix(s.URI, "sip:") && !strings.HasPrefix(s.URI, "sips:") {
			return fmt.Errorf("(send) uri %q: want a sip: or sips: URI", s.URI)
		}
		if s.Transport != "" && !transports[strings.ToLower(s.Transport)] {
			return fmt.Errorf("(send) transport %q: want udp, tcp, tls, ws or wss", s.Transport)
		}
		for j, h := range s.Headers {
			if h.Name == "" || strings.ContainsAny(h.Name, ": \r\n") {
				return fmt.Errorf("(send) headers[%d].name %q: want a header name", j, h.Name)
			}
		}
	case "register":
		if !strings.HasPrefix(s.URI, "sip:") && !strings.HasPrefix(s.URI, "sips:") {
			return fmt.Errorf("(register) uri %q: want the registrar's sip: URI", s.URI)
		}
		if s.User == "" {
			return errors.New("(register) user: want the user to register")
		}
		if s.Expires != nil && *s.Expires < 0 {
			return fmt.Errorf("(register) expires %d: must not be negative", *s.Expires)
		}
	case "repeat":
		if s.Count < 1 || len(s.Steps) == 0 {
			return fmt.Errorf("(repeat) count %d of %d steps: want at least 1 of at least one", s.Count, len(s.Steps))
		}
		for j := range s.Steps {
			if err := s.Steps[j].check(); err != nil {
				return fmt.Errorf("(repeat) steps[%d]: %w", j, err)
			}
		}
	case "barrier":
		if !validName.MatchString(s.Name) {
			return fmt.Errorf("(barrier) name %q: want a name of letters, digits and _", s.Name)
		}
		if s.TimeoutMS < 0 {
			return fmt.Errorf("(barrier) timeout_ms %d: must not be negative", s.TimeoutMS)
		}
	case "sleep":
		if s.MS < 0 {
			return fmt.Errorf("(sleep) ms %d: must not be negative", s.MS)
		}
	case "expect":
		if s.Request != "" {
			if len(s.Status) > 0 || strings.ToUpper(s.Request) != s.Request {
				return fmt.Errorf("(expect) request %q: want a SIP method in capitals, and no status with it", s.Request)
			}
			break
		}
		if _, _, err := s.statusRange(); err != nil && !variable.Match(s.Status) {
			return fmt.Errorf("(expect) status: %w", err) // one from a variable is checked when it runs
		}
		for j, h := range s.Headers {
			if _, err := regexp.Compile(h.Value); err != nil {
				return fmt.Errorf("(expect) headers[%d].value %q: want a regular expression: %v", j, h.Value, err)
			}
		}
		if _, err := regexp.Compile(s.Body); err != nil {
			return fmt.Errorf("(expect) body %q: want a regular expression: %v", s.Body, err)
		}
		if s.TimeoutMS < 0 {
			return fmt.Errorf("(expect) timeout_ms %d: must not be negative", s.TimeoutMS)
		}
	case "respond":
		var code int
		if json.Unmarshal(s.Status, &code) != nil || code < 100 || code > 699 {
			return fmt.Errorf("(respond) status %s: want a code from 100 to 699", orNone(s.Status))
		}
	case "capture":
		if !validName.MatchString(s.Var) {
			return fmt.Errorf("(capture) var %q: want a name of letters, digits and _", s.Var)
		}
		if _, err := regexp.Compile(s.Regex); err != nil || s.Regex == "" {
			return fmt.Errorf("(capture) regex %q: want a regular expression (Go's RE2 syntax)", s.Regex)
		}
	default:
		return fmt.Errorf("type %q: want send, register, sleep, expect, respond, capture, barrier or repeat", s.Type)
	}
	return nil
}

// statusRange is the codes an expect step takes: 200 is [200, 200], "2xx"
// is [200, 299].
func (s *Step) statusRange() (lo, hi int, err error) {
	var n int
	if json.Unmarshal(s.Status, &n) == nil && n >= 100 && n <= 699 {
		return n, n, nil
	}
	var class string
	if json.Unmarshal(s.Status, &class) == nil && len(class) == 3 && strings.HasSuffix(strings.ToLower(class), "xx") {
		if c, err := strconv.Atoi(class[:1]); err == nil && c >= 1 && c <= 6 {
			return c * 100, c*100 + 99, nil
		}
	}
	return 0, 0, fmt.Errorf("%s: want a code (200) or a class (\"2xx\")", orNone(s.Status))
}

func orNone(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "none"
	}
	return string(raw)
}

// line is the 1-based line of offset in data.
func line(data []byte, offset int64) int {
	return bytes.Count(data[:min(int(offset), len(data))], []byte("\n")) + 1
}
