package b2bua

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"
)

// Config is the b2bua role's part of the command line.
type Config struct {
	// MaxCallDuration ends a bridged call with BYE on both legs after this
	// long; 0 lets a call last as long as its parties want.
	MaxCallDuration time.Duration
	// SessionExpires, when not 0, is the session interval (RFC 4028) the
	// b2bua keeps on both legs, refreshing each itself.
	SessionExpires int
	// CredentialsFile holds the passwords the b2bua answers a B-leg 401 or
	// 407 with, by the callee's user: the users file's format.
	CredentialsFile string
	// credentials is the file, read by Validate.
	credentials map[string]string
}

// RegisterFlags adds the b2bua's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.MaxCallDuration, "max-call-duration", 0, "b2bua: end a bridged call with BYE on both legs after this long (0 = never)")
	fs.IntVar(&c.SessionExpires, "b2bua-session-expires", 0, "b2bua: session interval in seconds on both legs, each refreshed by the b2bua (RFC 4028; 0 = none; below 90 is for tests)")
	fs.StringVar(&c.CredentialsFile, "b2bua-credentials", "", `b2bua: JSON {"user": "password"}: the digest credentials it answers a callee's 401/407 with, by the called user (without one the challenge goes to the caller)`)
}

// Validate implements role.Config: it reads the credentials file.
func (c *Config) Validate(map[string]bool) error {
	if c.MaxCallDuration < 0 {
		return fmt.Errorf("--max-call-duration %v: must not be negative", c.MaxCallDuration)
	}
	if c.SessionExpires < 0 {
		return fmt.Errorf("--b2bua-session-expires %d: must not be negative", c.SessionExpires)
	}
	if c.CredentialsFile == "" {
		return nil
	}
	data, err := os.ReadFile(c.CredentialsFile)
	if err != nil {
		return fmt.Errorf("--b2bua-credentials: %w", err)
	}
	// Passwords only: answering a challenge needs the password (an HA1 is
	// per realm and algorithm, and the callee's realm is not known ahead).
	if err := json.Unmarshal(data, &c.credentials); err != nil {
		return fmt.Errorf(`--b2bua-credentials %s: want JSON {"user": "password"}: %w`, c.CredentialsFile, err)
	}
	return nil
}
