package edge

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/siphon-lab/siphon/pkg/config"
)

// Config is the edge's part of the command line.
type Config struct {
	UDPBind  string
	TCPBind  string
	SIPSBind string
	TLSCert  string
	TLSKey   string
	// ID names this edge on the bus; flows and bindings carry it.
	ID string
	// RoleTimeout is how long the edge waits for a role's next response before it
	// answers the client itself (408).
	RoleTimeout time.Duration

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
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	fs.StringVar(&c.ID, "edge-id", host, "this edge's id on the bus, carried by flows and bindings; defaults to the host name")
	fs.DurationVar(&c.RoleTimeout, "role-timeout", 5*time.Second, "how long the edge waits for a role's next response before answering 408")
}

// Validate checks the binds and loads the certificate. set holds the flags the
// user gave: TLS is asked for by --tls-cert, --tls-key or an explicit --sips-bind,
// and then it must work; it never falls back to cleartext.
func (c *Config) Validate(set map[string]bool) error {
	for name, addr := range map[string]string{"--udp-bind": c.UDPBind, "--tcp-bind": c.TCPBind, "--sips-bind": c.SIPSBind} {
		if addr == "" {
			continue
		}
		if err := config.CheckHostPort(name, addr); err != nil {
			return err
		}
	}
	if c.ID == "" {
		return errors.New("--edge-id must not be empty")
	}
	if c.RoleTimeout <= 0 || c.RoleTimeout > 32*time.Second {
		return fmt.Errorf("--role-timeout %v: want more than 0 and at most 32s (a non-INVITE transaction's lifetime)", c.RoleTimeout)
	}
	askedTLS := set["tls-cert"] || set["tls-key"] || (set["sips-bind"] && c.SIPSBind != "")
	if !askedTLS {
		c.SIPSBind = "" // the seed's default bind, but no certificate: TLS stays off
		return nil
	}
	switch {
	case c.SIPSBind == "":
		return errors.New("--tls-cert/--tls-key given but --sips-bind is empty: set --sips-bind to listen for TLS")
	case c.TLSCert == "" || c.TLSKey == "":
		return errors.New("TLS needs both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return fmt.Errorf("TLS certificate %s / key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return nil
}
