package proxy

import (
	"flag"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config is the proxy's part of the command line.
type Config struct {
	// Domains are the hosts whose users the location store knows (besides the
	// edges' own addresses), comma-separated.
	Domains string
	// ForkMode orders the bindings of an address-of-record: "q" (parallel
	// within equal q, serial between), "parallel" or "sequential".
	ForkMode string
	// GroupTimeout ends a serial fork group that only rings, so the next one
	// gets its turn; 0 lets each ring until Timer C.
	GroupTimeout time.Duration
	// Foreign says what becomes of a request for a domain not ours: "refuse"
	// (403) or "forward" (RFC 3263: NAPTR, SRV, A).
	Foreign string
	// DNSServer is the nameserver RFC 3263's queries go to; "" takes the
	// system's (/etc/resolv.conf).
	DNSServer string

	domains map[string]bool
}

// RegisterFlags adds the proxy's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Domains, "domain", "localhost,siphond.local", "domains the proxy serves from the location store, comma-separated (--local-uri's host and the edges' addresses always are)")
	fs.StringVar(&c.ForkMode, "fork-mode", "q", "how the bindings of a user are tried: q (parallel within equal q, serial between), parallel, sequential")
	fs.DurationVar(&c.GroupTimeout, "fork-group-timeout", 30*time.Second, "how long a serial fork group may ring before it is CANCELled for the next; 0: until Timer C")
	fs.StringVar(&c.Foreign, "foreign-domains", "refuse", "requests for a domain not ours: refuse (403) or forward (RFC 3263: NAPTR, SRV, A/AAAA; the next server on a transport error, timeout or 503)")
	fs.StringVar(&c.DNSServer, "dns-server", "", "nameserver (host:port) for --foreign-domains forward; empty: the system's first (/etc/resolv.conf)")
}

// Validate implements role.Config.
func (c *Config) Validate(map[string]bool) error {
	if c.GroupTimeout < 0 {
		return fmt.Errorf("--fork-group-timeout %v: must not be negative", c.GroupTimeout)
	}
	if c.Foreign != "refuse" && c.Foreign != "forward" {
		return fmt.Errorf("--foreign-domains %q: want refuse or forward", c.Foreign)
	}
	if c.DNSServer != "" {
		if _, _, err := net.SplitHostPort(c.DNSServer); err != nil {
			return fmt.Errorf("--dns-server %q: want host:port (127.0.0.1:53)", c.DNSServer)
		}
	}
	switch c.ForkMode {
	case "q", "parallel", "sequential":
	default:
		return fmt.Errorf("--fork-mode %q: want q, parallel or sequential", c.ForkMode)
	}
	c.domains = map[string]bool{}
	for _, d := range strings.Split(c.Domains, ",") {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			if strings.ContainsAny(d, " ;:<>@") {
				return fmt.Errorf("--domain %q: want host names or addresses", d)
			}
			c.domains[d] = true
		}
	}
	return nil
}

func (c *Config) isDomain(host string) bool { return c.domains[strings.ToLower(host)] }

// groups orders targets as --fork-mode says: a list of groups, each rung at once.
func (c *Config) groups(targets []Target) [][]Target {
	var out [][]Target
	for _, t := range targets { // targets come ordered by q, highest first
		switch {
		case c.ForkMode == "parallel" && len(out) > 0:
			out[0] = append(out[0], t)
		case c.ForkMode == "q" && len(out) > 0 && out[len(out)-1][0].Q == t.Q:
			out[len(out)-1] = append(out[len(out)-1], t)
		default:
			out = append(out, []Target{t})
		}
	}
	return out
}
