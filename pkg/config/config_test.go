package config

import (
	"flag"
	"strings"
	"testing"
)

func TestParseEnvironment(t *testing.T) {
	env := map[string]string{"SIPHON_MODE": "registrar", "SIPHON_LOG_LEVEL": "debug", "SIPHON_UDP_BIND": "127.0.0.1:5070"}
	var c Shared
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	udp := fs.String("udp-bind", "0.0.0.0:5060", "")
	set, err := Parse(fs, []string{"--log-level", "warn"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != "registrar" || *udp != "127.0.0.1:5070" {
		t.Fatalf("environment not applied: mode=%s udp=%s", c.Mode, *udp)
	}
	if c.LogLevel != "warn" {
		t.Fatalf("command line must win over the environment: %s", c.LogLevel)
	}
	if !set["mode"] || !set["log-level"] || set["redis"] {
		t.Fatalf("set flags: %v", set)
	}
}

func TestParseErrors(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Bool("auth", false, "")
	if _, err := Parse(fs, nil, func(k string) string { return map[string]string{"SIPHON_AUTH": "maybe"}[k] }); err == nil || !strings.Contains(err.Error(), "SIPHON_AUTH") {
		t.Fatalf("bad env value: %v", err)
	}
	if _, err := Parse(flag.NewFlagSet("t", flag.ContinueOnError), []string{"stray"}, func(string) string { return "" }); err == nil {
		t.Fatal("stray argument accepted")
	}
}

func TestValidate(t *testing.T) {
	ok := Shared{Mode: "minimal", LogLevel: "info", LogFormat: "text", LocalURI: "sip:a@b", MetricsBind: "127.0.0.1:9090"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Shared){
		"nats scheme":  func(s *Shared) { s.NATS = "http://x:1" },
		"redis host":   func(s *Shared) { s.Redis = "redis://" },
		"metrics bind": func(s *Shared) { s.MetricsBind = "nope" },
		"log level":    func(s *Shared) { s.LogLevel = "trace" },
		"local uri":    func(s *Shared) { s.LocalURI = "http://x" },
	} {
		s := ok
		mut(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
