// Package auth is the lab's digest authentication (RFC 3261 §22, RFC 7616,
// RFC 8760): the --auth flags, shared by the registrar (401 to REGISTER) and
// the proxy (407 to requests from our domain), and the server side that any
// replica can verify.
package auth

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config is the --auth part of the command line. It is registered once per
// process, whatever roles it runs, and every role that challenges reads it.
type Config struct {
	Auth        bool
	Realm       string
	UsersFile   string
	Algorithms  string
	NonceTTL    time.Duration
	MaxFailures int
	Lockout     time.Duration

	// Users is loaded by Validate: user → credentials.
	Users map[string]Credentials
}

// Credentials is one user of the users file: a password, or precomputed HA1
// values per algorithm (so the file need not hold the password).
type Credentials struct {
	Password string
	HA1      map[string]string // algorithm (MD5, SHA-256, SHA-512-256) → hex HA1
}

// DefaultUsers are the lab's users when --auth is on and no --auth-users is
// given, as siphond had built in.
var DefaultUsers = map[string]Credentials{
	"alice": {Password: "secret123"},
	"bob":   {Password: "pass456"},
	"test":  {Password: "test"},
}

// RegisterFlags adds the authentication flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Auth, "auth", false, "require Digest authentication: the registrar answers REGISTER 401, the uas and events roles every request out of a dialog but OPTIONS 401, the proxy requests from its domain 407")
	fs.StringVar(&c.Realm, "auth-realm", "siphond.local", "authentication realm")
	fs.StringVar(&c.UsersFile, "auth-users", "", `users file, JSON {"user": "password"} or {"user": {"ha1": {"MD5": "hex", ...}}}; default: alice, bob, test`)
	fs.StringVar(&c.Algorithms, "auth-algorithms", DefaultAlgorithms,
		"digest algorithms offered, one challenge each, in this order; SHA-512-256,SHA-256,MD5 is RFC 8760's strongest-first")
	fs.DurationVar(&c.NonceTTL, "auth-nonce-ttl", 5*time.Minute, "how long a nonce is good for; older ones get 401 with stale=true")
	fs.IntVar(&c.MaxFailures, "auth-max-failures", 10, "failed authentications for one user from one source before that pair is locked out (ten times as many from one source, for any users, lock the source out)")
	fs.DurationVar(&c.Lockout, "auth-lockout", time.Minute, "how long a lock-out lasts (the failure window)")
}

var knownAlgorithms = map[string]bool{"MD5": true, "SHA-256": true, "SHA-512-256": true}

// DefaultAlgorithms is one challenge, MD5: the one every common phone and
// test tool answers. SIPp 3.6.1 answers only the first challenge and only MD5
// (RFC 8760 §2.6's legacy UACs), and baresip 1.0.0 (Debian 12) gives up the
// whole registration ("Function not implemented") when any challenge names
// an algorithm it lacks, SHA-512-256 among them. --auth-algorithms
// SHA-512-256,SHA-256,MD5 offers RFC 8760's strongest-first choice to clients
// that read every challenge.
const DefaultAlgorithms = "MD5"

// AlgorithmList is --auth-algorithms split and upper-cased.
func (c *Config) AlgorithmList() []string {
	var out []string
	for _, a := range strings.Split(c.Algorithms, ",") {
		if a = strings.ToUpper(strings.TrimSpace(a)); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Validate checks the digest policy and loads the users file.
func (c *Config) Validate() error {
	algs := c.AlgorithmList()
	if len(algs) == 0 {
		return errors.New("--auth-algorithms is empty: want some of SHA-512-256, SHA-256, MD5")
	}
	for _, a := range algs {
		if !knownAlgorithms[a] {
			return fmt.Errorf("--auth-algorithms: unknown algorithm %q (want SHA-512-256, SHA-256 or MD5)", a)
		}
	}
	if c.NonceTTL <= 0 || c.Lockout <= 0 || c.MaxFailures <= 0 {
		return errors.New("--auth-nonce-ttl, --auth-lockout and --auth-max-failures must be positive")
	}
	if c.Realm == "" || strings.ContainsAny(c.Realm, `"\`) {
		return fmt.Errorf("--auth-realm %q: want a non-empty realm without quotes or backslashes", c.Realm)
	}
	users, err := LoadUsers(c.UsersFile)
	if err != nil {
		return err
	}
	c.Users = users
	return nil
}

// LoadUsers reads a users file; an empty path gives DefaultUsers.
func LoadUsers(path string) (map[string]Credentials, error) {
	if path == "" {
		return DefaultUsers, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--auth-users: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("--auth-users %s: want JSON {\"user\": \"password\"}: %w", path, err)
	}
	users := make(map[string]Credentials, len(raw))
	for user, v := range raw {
		var pw string
		if json.Unmarshal(v, &pw) == nil {
			users[user] = Credentials{Password: pw}
			continue
		}
		var ha struct {
			HA1 map[string]string `json:"ha1"`
		}
		if err := json.Unmarshal(v, &ha); err != nil || len(ha.HA1) == 0 {
			return nil, fmt.Errorf("--auth-users %s: user %q: want a password string or {\"ha1\": {\"MD5\": \"hex\"}}", path, user)
		}
		creds := Credentials{HA1: map[string]string{}}
		for alg, h := range ha.HA1 {
			alg = strings.ToUpper(alg)
			if !knownAlgorithms[alg] {
				return nil, fmt.Errorf("--auth-users %s: user %q: unknown algorithm %q", path, user, alg)
			}
			creds.HA1[alg] = strings.ToLower(h)
		}
		users[user] = creds
	}
	return users, nil
}
