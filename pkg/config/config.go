// Package config holds the flags every siphond process shares, and the rule that
// each flag can also be set as SIPHON_<NAME> in the environment.
//
// Each role owns its own flags in its package (a Config with RegisterFlags); the
// ones here are those every process reads, and those of roles not built yet whose
// flags are part of the CLI already.
package config

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// EnvPrefix starts the environment variable of every flag.
const EnvPrefix = "SIPHON_"

// EnvName is the environment variable for flag name: "udp-bind" → SIPHON_UDP_BIND.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then sets every flag not given on the command line
// from its environment variable. The command line wins over the environment.
// It returns the names of the flags that were set either way.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) (map[string]bool, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		env := EnvName(f.Name)
		v := getenv(env)
		if v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s=%q: %w", env, v, e)
			return
		}
		set[f.Name] = true
	})
	return set, err
}

// Shared is what every process reads, whatever its role.
type Shared struct {
	Mode        string
	Role        string
	NATS        string
	Redis       string
	MetricsBind string
	LogLevel    string
	LogFormat   string
	UserAgent   string
	LocalURI    string
	Scenario    string
	// ScenarioActor is the actor a `--role scenario` worker plays ("": any).
	ScenarioActor string
	// EnableRefer lets the roles that take REFER (the uas, the b2bua) carry
	// out transfers (RFC 3515).
	EnableRefer bool
}

// RegisterFlags adds the shared flags to fs.
func (c *Shared) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Mode, "mode", "minimal", "operational mode: minimal, full-uas, registrar, proxy, b2bua, call-server, subscription-server")
	fs.StringVar(&c.Role, "role", "all", "roles this process runs: edge, registrar, proxy, b2bua, uas, events, a comma list, or all; scenario alone: a worker for `siphond run FILE --nats URL`")
	fs.StringVar(&c.NATS, "nats", "", "NATS server URL (nats://host:port); empty starts an embedded server in this process")
	fs.StringVar(&c.Redis, "redis", "", "Redis URL (redis://host:port/db); empty keeps state in memory in this process")
	fs.StringVar(&c.MetricsBind, "metrics-bind", "127.0.0.1:9090", "address for /metrics, /healthz and /readyz; empty turns them off")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.UserAgent, "user-agent", "siphond/0.2-refactored", "User-Agent and Server header value")
	fs.StringVar(&c.LocalURI, "local-uri", "sip:siphond@localhost", "local SIP URI for From/Contact headers")
	fs.StringVar(&c.Scenario, "scenario", "", "run a JSON scenario file once the daemon is up (needs an edge in this process); `siphond run FILE` runs one and exits")
	fs.StringVar(&c.ScenarioActor, "scenario-actor", "", "with --role scenario: the actor of the coordinator's scenario this worker plays; empty: any it is given")
	fs.BoolVar(&c.EnableRefer, "enable-refer", true, "enable REFER call transfer (RFC 3515) in the uas and the b2bua")
}

// Validate checks the shared flags that need no other context.
func (c *Shared) Validate() error {
	if c.NATS != "" {
		if err := checkURL("--nats", c.NATS, "nats", "tls"); err != nil {
			return err
		}
	}
	if c.Redis != "" {
		if err := checkURL("--redis", c.Redis, "redis", "rediss", "unix"); err != nil {
			return err
		}
	}
	if c.MetricsBind != "" {
		if err := CheckHostPort("--metrics-bind", c.MetricsBind); err != nil {
			return err
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if !strings.HasPrefix(c.LocalURI, "sip:") && !strings.HasPrefix(c.LocalURI, "sips:") {
		return fmt.Errorf("--local-uri %q: want a sip: or sips: URI", c.LocalURI)
	}
	return nil
}

func checkURL(flagName, raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flagName, raw, err)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if s != "unix" && u.Host == "" {
				return fmt.Errorf("%s %q: missing host:port", flagName, raw)
			}
			return nil
		}
	}
	return fmt.Errorf("%s %q: want a %s:// URL", flagName, raw, schemes[0])
}

// CheckHostPort checks a bind address such as 127.0.0.1:5060 or :5060.
func CheckHostPort(flagName, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port: %w", flagName, addr, err)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("%s %q: %q is not an IP address", flagName, addr, host)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%s %q: bad port: %w", flagName, addr, err)
	}
	return nil
}
