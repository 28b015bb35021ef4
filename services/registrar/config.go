package registrar

import (
	"flag"
	"fmt"
)

// Config is the registrar's part of the command line: the seed's registration
// flags. The --auth flags are every challenging role's (pkg/auth, role.Deps.Auth).
type Config struct {
	AutoAccept    bool
	DefaultExpiry int
	MinExpiry     int
	MaxExpiry     int
}

// RegisterFlags adds the registrar's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.AutoAccept, "auto-accept-registrations", true, "accept REGISTER requests (false answers 403)")
	fs.IntVar(&c.DefaultExpiry, "reg-default-expiry", 3600, "registration expiry when the request gives none, seconds")
	fs.IntVar(&c.MinExpiry, "reg-min-expiry", 60, "shortest registration accepted (shorter gets 423), seconds")
	fs.IntVar(&c.MaxExpiry, "reg-max-expiry", 86400, "longest registration granted (longer is lowered), seconds")
}

// Validate implements role.Config: it checks the expiries.
func (c *Config) Validate(map[string]bool) error {
	if c.MinExpiry < 0 || c.MinExpiry > c.DefaultExpiry || c.DefaultExpiry > c.MaxExpiry {
		return fmt.Errorf("registration expiries must satisfy 0 <= --reg-min-expiry (%d) <= --reg-default-expiry (%d) <= --reg-max-expiry (%d)",
			c.MinExpiry, c.DefaultExpiry, c.MaxExpiry)
	}
	return nil
}
