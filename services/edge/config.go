package edge

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/siphon-lab/siphon/pkg/config"
)

// Config is the edge's part of the command line.
type Config struct {
	UDPBind  string
	TCPBind  string
	SIPSBind string
	// WSBind and WSSBind are the WebSocket listeners (RFC 7118), off when
	// empty; WSS uses the TLS certificate.
	WSBind, WSSBind string
	// TLSSkipVerify: connections the edge opens over TLS or WSS take any
	// certificate (a lab of self-signed ones).
	TLSSkipVerify bool
	TLSCert       string
	TLSKey        string
	// Advertise and AdvertiseTLS are the edge's addresses as UAs reach them
	// (NAT, a container's published ports), for Record-Route and Contact.
	Advertise    string
	AdvertiseTLS string
	// ID names this edge on the bus; flows and bindings carry it.
	ID string
	// RoleTimeout is how long the edge waits for a role's next response before it
	// answers the client itself (408).
	RoleTimeout time.Duration
	// TimerC bounds how long an INVITE rings without a final response (RFC
	// 3261 §16.6 step 11), reset by every provisional one.
	TimerC time.Duration
	// SenderCheck is how often the edge checks that a role replica with INVITE
	// branches in flight is still there.
	SenderCheck time.Duration
	// MaxMessageSize bounds a message the edge takes; a larger request gets
	// 513 (RFC 3261 §21.5.14) on every transport.
	MaxMessageSize int
	// UDPRateLimit and StreamRateLimit are the requests a second taken from
	// one source IP over UDP and on one TCP/TLS connection (0: no limit);
	// RateLimitBurst is how many above the rate may come at once (0: one
	// second's worth); RateLimitAction is LimitDrop or Limit503.
	UDPRateLimit, StreamRateLimit, RateLimitBurst int
	RateLimitAction                               string
	// UserRateLimit is the REGISTERs and INVITEs a second one user (the From
	// address) may send, counted in the store across every edge; 0: no limit.
	UserRateLimit int
	// MaxConnections and MaxConnectionsPerSource bound open TCP/TLS
	// connections (0: no bound); IdleTimeout closes one with nothing read or
	// written, HeaderTimeout one whose message headers take longer (0: never).
	MaxConnections, MaxConnectionsPerSource int
	IdleTimeout, HeaderTimeout              time.Duration
	// MaxTransactions bounds the requests relayed to roles at once; past it
	// a request gets 503 (0: no bound).
	MaxTransactions int

	// TLS is the loaded certificate, set by Validate when TLS is on.
	TLS *tls.Config
}

// RegisterFlags adds the edge's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	if host == "" {
		host = "edge"
	}
	fs.StringVar(&c.UDPBind, "udp-bind", "0.0.0.0:5060", "UDP bind address; empty turns UDP off")
	fs.StringVar(&c.TCPBind, "tcp-bind", "0.0.0.0:5060", "TCP bind address; empty turns TCP off")
	fs.StringVar(&c.SIPSBind, "sips-bind", "0.0.0.0:5061", "TLS bind address; TLS is on when --tls-cert and --tls-key are given")
	fs.StringVar(&c.WSBind, "ws-bind", "", "WebSocket (RFC 7118, subprotocol sip) bind address; empty: off")
	fs.StringVar(&c.WSSBind, "wss-bind", "", "secure WebSocket bind address, with the --tls-cert certificate; empty: off")
	fs.BoolVar(&c.TLSSkipVerify, "tls-skip-verify", false, "take any certificate on the TLS and WSS connections the edge opens (a lab's self-signed peers)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	fs.StringVar(&c.Advertise, "advertise", "", "host:port UAs reach this edge's UDP and TCP at, when not the bind address (NAT, published container ports): put in Record-Route and Contact")
	fs.StringVar(&c.AdvertiseTLS, "advertise-tls", "", "host:port UAs reach this edge's TLS at, when not --sips-bind")
	fs.StringVar(&c.ID, "edge-id", host, "this edge's id on the bus, carried by flows and bindings; defaults to the host name")
	fs.DurationVar(&c.RoleTimeout, "role-timeout", 5*time.Second, "how long the edge waits for a role's next response before answering 408")
	fs.DurationVar(&c.TimerC, "timer-c", DefaultTimerC, "how long an INVITE may ring without a final response, reset by each provisional one; then it is CANCELled (RFC 3261 Timer C)")
	fs.IntVar(&c.MaxMessageSize, "max-message-size", MaxMessageSize, "largest SIP message taken, in bytes, headers and body (at most 65535); a larger request is answered 513 Message Too Large")
	fs.IntVar(&c.UDPRateLimit, "udp-rate-limit", 200, "requests a second taken from one source IP over UDP (retransmissions answered from the cache aside); 0 turns the limit off")
	fs.IntVar(&c.StreamRateLimit, "stream-rate-limit", 200, "requests a second taken on one TCP or TLS connection; 0 turns the limit off")
	fs.IntVar(&c.RateLimitBurst, "rate-limit-burst", 0, "requests a source may send at once above its rate; 0 is one second's worth")
	fs.StringVar(&c.RateLimitAction, "rate-limit-action", LimitDrop, "what a request over its source's limit gets: drop, or 503 (with Retry-After)")
	fs.IntVar(&c.UserRateLimit, "user-rate-limit", 0, "REGISTERs and INVITEs a second from one user (From address) and source IP, counted across every edge through the state store; past it 503 with Retry-After (0: no limit)")
	fs.IntVar(&c.MaxConnections, "max-connections", 4096, "TCP and TLS connections open at once; one more is closed at once (0: no limit)")
	fs.IntVar(&c.MaxConnectionsPerSource, "max-connections-per-source", 256, "TCP and TLS connections open at once from one source IP (0: no limit)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 5*time.Minute, "a TCP or TLS connection with nothing read or written for this long is closed (RFC 5626 CRLF keep-alives count); 0 never")
	fs.DurationVar(&c.HeaderTimeout, "header-timeout", 10*time.Second, "how long a message's headers may take to arrive once it has begun, on TCP and TLS (slowloris); then the connection is closed; 0 never")
	fs.IntVar(&c.MaxTransactions, "max-transactions", 10000, "requests the edge has with roles at once; one more is answered 503 with Retry-After (0: no limit)")
	fs.DurationVar(&c.SenderCheck, "sender-check", 2*time.Second, "how often the edge checks that a role replica with INVITEs ringing through it is still there; a gone one's branches are CANCELled")
}

// MaxMessageSize is the most a message may be: sipgo's parser takes no
// more (sip.ParseMaxMessageLength), and a UDP datagram carries 65,507 bytes.
const MaxMessageSize = 65535

// DefaultTimerC is just over the 3 minutes RFC 3261 §16.6 step 11 requires
// Timer C to exceed.
const DefaultTimerC = 3*time.Minute + 10*time.Second

// Validate implements role.Config: it checks the binds and timers and loads the
// certificate. set holds the flags the user gave: TLS is asked for by
// --tls-cert, --tls-key or an explicit --sips-bind, and then it must work; it
// never falls back to cleartext.
func (c *Config) Validate(set map[string]bool) error {
	for name, addr := range map[string]string{"--udp-bind": c.UDPBind, "--tcp-bind": c.TCPBind, "--sips-bind": c.SIPSBind, "--ws-bind": c.WSBind, "--wss-bind": c.WSSBind} {
		if addr == "" {
			continue
		}
		if err := config.CheckHostPort(name, addr); err != nil {
			return err
		}
	}
	for name, addr := range map[string]string{"--advertise": c.Advertise, "--advertise-tls": c.AdvertiseTLS} {
		if addr == "" {
			continue
		}
		if err := config.CheckHostPort(name, addr); err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return fmt.Errorf("%s %s: name an address UAs can reach (a LAN address, a public one), not every interface", name, addr)
		}
	}
	if c.ID == "" {
		return errors.New("--edge-id must not be empty")
	}
	if c.RoleTimeout <= 0 || c.RoleTimeout > 32*time.Second {
		return fmt.Errorf("--role-timeout %v: want more than 0 and at most 32s (a non-INVITE transaction's lifetime)", c.RoleTimeout)
	}
	if c.TimerC < time.Second {
		// Below RFC 3261's 3 minutes is allowed on purpose, so a lab test can
		// watch Timer C fire in seconds.
		return fmt.Errorf("--timer-c %v: want at least 1s (RFC 3261 wants more than 3m)", c.TimerC)
	}
	if c.MaxMessageSize < 1024 || c.MaxMessageSize > MaxMessageSize {
		return fmt.Errorf("--max-message-size %d: want between 1024 and %d bytes", c.MaxMessageSize, MaxMessageSize)
	}
	if c.UDPRateLimit < 0 || c.StreamRateLimit < 0 || c.RateLimitBurst < 0 || c.UserRateLimit < 0 {
		return errors.New("--udp-rate-limit, --stream-rate-limit, --user-rate-limit and --rate-limit-burst: want 0 (off, or the default burst) or more")
	}
	if c.MaxConnections < 0 || c.MaxConnectionsPerSource < 0 || c.MaxTransactions < 0 || c.IdleTimeout < 0 || c.HeaderTimeout < 0 {
		return errors.New("--max-connections, --max-connections-per-source, --max-transactions, --idle-timeout and --header-timeout: want 0 (no limit) or more")
	}
	if c.RateLimitAction != LimitDrop && c.RateLimitAction != Limit503 {
		return fmt.Errorf("--rate-limit-action %q: want %s or %s", c.RateLimitAction, LimitDrop, Limit503)
	}
	if c.SenderCheck < 10*time.Millisecond || c.SenderCheck > time.Minute {
		return fmt.Errorf("--sender-check %v: want between 10ms and 1m", c.SenderCheck)
	}
	askedTLS := set["tls-cert"] || set["tls-key"] || (set["sips-bind"] && c.SIPSBind != "") || c.WSSBind != ""
	if !askedTLS {
		c.SIPSBind = "" // the seed's default bind, but no certificate: TLS stays off
		return nil
	}
	switch {
	case c.SIPSBind == "" && c.WSSBind == "":
		return errors.New("--tls-cert/--tls-key given but --sips-bind is empty: set --sips-bind to listen for TLS")
	case c.TLSCert == "" || c.TLSKey == "":
		return errors.New("TLS (--sips-bind, --wss-bind) needs both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return fmt.Errorf("TLS certificate %s / key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return nil
}

// Listener is one socket the edge binds: the flag that names it, the network
// ("udp" or "tcp") and the address.
type Listener struct {
	Flag, Network, Addr string
}

// Listeners are the sockets a validated Config binds: UDP, TCP and, with a
// certificate, TLS.
func (c *Config) Listeners() []Listener {
	var out []Listener
	for _, l := range []Listener{{"--udp-bind", "udp", c.UDPBind}, {"--tcp-bind", "tcp", c.TCPBind}, {"--sips-bind", "tcp", c.SIPSBind},
		{"--ws-bind", "tcp", c.WSBind}, {"--wss-bind", "tcp", c.WSSBind}} {
		if l.Addr != "" {
			out = append(out, l)
		}
	}
	return out
}

// burst is the bucket size for a limit of perSecond.
func (c *Config) burst(perSecond int) int {
	if c.RateLimitBurst > 0 {
		return c.RateLimitBurst
	}
	return perSecond
}
