package uas

import (
	"flag"
	"fmt"
	"time"
)

// Config is the uas role's part of the command line: the seed's call flags, and
// the timings a lab tunes to make a scenario happen (ringing long enough to
// cancel, session timers short enough to see expire).
type Config struct {
	AutoAcceptCalls          bool
	EnablePRACK              bool
	EnableSessionTimers      bool
	SDPProfile               string
	AllowPrivateReferTargets bool

	AnswerDelay    time.Duration
	EarlyMedia     bool
	SessionExpires int
	MinSE          int
	DialogExpiry   time.Duration
}

// RegisterFlags adds the uas flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.AutoAcceptCalls, "auto-accept-calls", true, "accept INVITE requests (false answers 486)")
	fs.BoolVar(&c.EnablePRACK, "enable-prack", true, "enable reliable provisional responses (RFC 3262)")
	fs.BoolVar(&c.EnableSessionTimers, "enable-session-timers", false, "enable session timers (RFC 4028)")
	fs.StringVar(&c.SDPProfile, "sdp-profile", "audio-only", "SDP profile: none, audio-only, audio-video, or a path to an SDP file")
	fs.BoolVar(&c.AllowPrivateReferTargets, "allow-private-refer-targets", false, "let REFER target private and loopback addresses")
	fs.DurationVar(&c.AnswerDelay, "answer-delay", 0, "how long an INVITE rings before the 200 (a CANCEL can end it meanwhile)")
	fs.BoolVar(&c.EarlyMedia, "early-media", false, "send 183 Session Progress with the SDP answer instead of 180 Ringing")
	fs.IntVar(&c.SessionExpires, "session-expires", 1800, "session interval in seconds the uas asks for when session timers are on (RFC 4028)")
	fs.IntVar(&c.MinSE, "min-se", 90, "smallest session interval in seconds the uas accepts; smaller gets 422 (RFC 4028 says 90; lower is for tests)")
	fs.DurationVar(&c.DialogExpiry, "dialog-expiry", time.Hour, "a dialog with no request for this long and no session timer is forgotten")
}

// Validate implements role.Config: it checks the SDP profile and the timings.
func (c *Config) Validate(map[string]bool) error {
	if _, err := LoadCapabilities(c.SDPProfile); err != nil {
		return fmt.Errorf("%w (want none, audio-only, audio-video or an SDP file)", err)
	}
	switch {
	case c.AnswerDelay < 0:
		return fmt.Errorf("--answer-delay %v: must not be negative", c.AnswerDelay)
	case c.MinSE < 1:
		// Below RFC 4028's floor of 90 s is allowed on purpose: a lab test wants
		// to watch a session expire in seconds. Start logs a warning.
		return fmt.Errorf("--min-se %d: must be at least 1 second", c.MinSE)
	case c.SessionExpires < c.MinSE:
		return fmt.Errorf("--session-expires %d: must be at least --min-se %d", c.SessionExpires, c.MinSE)
	case c.DialogExpiry < time.Second:
		return fmt.Errorf("--dialog-expiry %v: must be at least a second", c.DialogExpiry)
	}
	return nil
}
