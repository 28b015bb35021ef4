// Package role is the one contract every siphon role implements, and the
// registry cmd/siphond walks. A role registers itself from its package's init,
// as CoreDNS plugins call plugin.Register: adding a role is its folder and one
// import in cmd/siphond.
package role

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/siphon-lab/siphon/pkg/auth"
	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/store"
)

// Config is a role's part of the command line.
type Config interface {
	// RegisterFlags adds the role's flags to fs. Every registered role's flags
	// are on every process's command line, whatever it runs.
	RegisterFlags(fs *flag.FlagSet)
	// Validate checks the flags once parsed; set names the flags given
	// explicitly (on the command line or as SIPHON_<FLAG>). An error is bad
	// configuration: siphond prints it on one line and exits 2.
	Validate(set map[string]bool) error
}

// Deps are what a role starts with, shared by every role of the process.
type Deps struct {
	// Mode is this process's --mode.
	Mode mode.Mode
	// NATS is the role's own connection (embedded server or --nats).
	NATS *nats.Conn
	// Store is where shared state lives (memory or --redis).
	Store   store.Backend
	Log     *slog.Logger
	Metrics *obs.Metrics
	// Health takes the role's readiness checks for /readyz.
	Health *obs.Health
	// IDs makes a generator for one stream of Call-IDs, tags and branches
	// (reproducible with SIPHON_ID_SEED).
	IDs func(stream string) *ids.Generator
	// Clock drives every timer the role runs; tests pass a fake one.
	Clock clockwork.Clock
	// UserAgent is the User-Agent/Server header value (--user-agent).
	UserAgent string
	// LocalURI is this lab's own SIP URI (--local-uri): its host is a domain of ours.
	LocalURI string
	// EnableRefer is --enable-refer: the uas and the b2bua carry out REFER.
	EnableRefer bool
	// Auth is the --auth policy, validated: the registrar's 401s and the
	// proxy's 407s share it.
	Auth auth.Config
}

// Role is one role: edge, registrar, uas, and those to come.
type Role interface {
	// Name is the role's name (wire.Role*): --role, subjects, service name.
	Name() string
	// Config is the role's flags, filled when the command line is parsed.
	Config() Config
	// Start joins the bus with deps; the role serves until Stop.
	Start(ctx context.Context, deps Deps) error
	// Stop leaves the bus and lets work already taken finish, until ctx ends.
	Stop(ctx context.Context) error
}

// Factory makes a role, unconfigured.
type Factory func() Role

var (
	mu       sync.Mutex
	registry = map[string]Factory{}
)

// Register makes a role known to siphond. It panics on a name registered twice
// or not in mode.Roles: both are programming errors found at start.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("role: %s registered twice", name))
	}
	if !slices.Contains(mode.Roles, name) {
		panic(fmt.Sprintf("role: %s is not a role of mode.Roles", name))
	}
	registry[name] = f
}

// Registered lists the registered roles in mode.Roles order (start order).
func Registered() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for _, name := range mode.Roles {
		if _, ok := registry[name]; ok {
			out = append(out, name)
		}
	}
	return out
}

// New makes the registered role name; ok is false when none is.
func New(name string) (Role, bool) {
	mu.Lock()
	f, ok := registry[name]
	mu.Unlock()
	if !ok {
		return nil, false
	}
	return f(), true
}
