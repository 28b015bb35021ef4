package uas

import (
	"flag"
	"fmt"
	"os"
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

// Validate checks the SDP profile names a preset or a readable file.
func (c *Config) Validate() error {
	switch c.SDPProfile {
	case "none", "audio-only", "audio-video":
		return nil
	}
	if _, err := os.ReadFile(c.SDPProfile); err != nil {
		return fmt.Errorf("--sdp-profile %q is not none, audio-only, audio-video or a readable SDP file: %w", c.SDPProfile, err)
	}
	return nil
}
