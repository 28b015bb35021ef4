package b2bua

import (
	"flag"
	"fmt"
	"time"
)

// Config is the b2bua role's part of the command line.
type Config struct {
	// MaxCallDuration ends a bridged call with BYE on both legs after this
	// long; 0 lets a call last as long as its parties want.
	MaxCallDuration time.Duration
}

// RegisterFlags adds the b2bua's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.MaxCallDuration, "max-call-duration", 0, "b2bua: end a bridged call with BYE on both legs after this long (0 = never)")
}

// Validate implements role.Config.
func (c *Config) Validate(map[string]bool) error {
	if c.MaxCallDuration < 0 {
		return fmt.Errorf("--max-call-duration %v: must not be negative", c.MaxCallDuration)
	}
	return nil
}
