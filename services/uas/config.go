package uas

import (
	"flag"
	"fmt"
)

// Config is the uas role's part of the command line: the seed's call flags.
type Config struct {
	AutoAcceptCalls          bool
	EnablePRACK              bool
	EnableRefer              bool
	EnableSessionTimers      bool
	SDPProfile               string
	AllowPrivateReferTargets bool
}

// RegisterFlags adds the uas flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.AutoAcceptCalls, "auto-accept-calls", true, "accept INVITE requests (false answers 486)")
	fs.BoolVar(&c.EnablePRACK, "enable-prack", true, "enable reliable provisional responses (RFC 3262)")
	fs.BoolVar(&c.EnableRefer, "enable-refer", true, "enable REFER call transfer (RFC 3515)")
	fs.BoolVar(&c.EnableSessionTimers, "enable-session-timers", false, "enable session timers (RFC 4028)")
	fs.StringVar(&c.SDPProfile, "sdp-profile", "audio-only", "SDP profile: none, audio-only, audio-video, or a path to an SDP file")
	fs.BoolVar(&c.AllowPrivateReferTargets, "allow-private-refer-targets", false, "let REFER target private and loopback addresses")
}

// Validate checks the SDP profile is a preset or an SDP file with media.
func (c *Config) Validate() error {
	if _, err := LoadCapabilities(c.SDPProfile); err != nil {
		return fmt.Errorf("%w (want none, audio-only, audio-video or an SDP file)", err)
	}
	return nil
}
