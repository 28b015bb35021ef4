package events

import (
	"flag"
	"fmt"
)

// Config is the events role's part of the command line.
type Config struct {
	// AutoAccept false answers every SUBSCRIBE 603 (the seed's flag).
	AutoAccept bool
	// MinExpiry, DefaultExpiry and MaxExpiry bound a subscription's and a
	// publication's Expires, in seconds (RFC 6665 §4.2.1.1, RFC 3903 §6 step
	// 5: 423 below the minimum, lowered above the maximum).
	MinExpiry, DefaultExpiry, MaxExpiry int
}

// RegisterFlags adds the events role's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.AutoAccept, "auto-accept-subscriptions", true, "accept SUBSCRIBE requests (false answers 603)")
	fs.IntVar(&c.MinExpiry, "sub-min-expiry", 60, "shortest subscription or publication accepted (shorter gets 423 with Min-Expires), seconds")
	fs.IntVar(&c.DefaultExpiry, "sub-default-expiry", 3600, "subscription or publication expiry when the request gives none, seconds")
	fs.IntVar(&c.MaxExpiry, "sub-max-expiry", 86400, "longest subscription or publication granted (longer is lowered), seconds")
}

// Validate implements role.Config.
func (c *Config) Validate(map[string]bool) error {
	if c.MinExpiry < 1 || c.MinExpiry > c.DefaultExpiry || c.DefaultExpiry > c.MaxExpiry {
		return fmt.Errorf("subscription expiries must satisfy 1 <= --sub-min-expiry (%d) <= --sub-default-expiry (%d) <= --sub-max-expiry (%d)",
			c.MinExpiry, c.DefaultExpiry, c.MaxExpiry)
	}
	return nil
}
