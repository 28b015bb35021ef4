package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/services/edge"
)

// preflight binds, and at once releases, every socket the plan will listen
// on: a port another process holds is a mistake in the configuration, told
// in one line (exit 2) before any role starts or says "listening". An edge
// with no SIP socket at all is one too.
func (o *options) preflight(p plan) error {
	var ls []edge.Listener
	if p.has(mode.RoleEdge) {
		ls = o.roles[mode.RoleEdge].Config().(*edge.Config).Listeners()
		if len(ls) == 0 {
			return errors.New("the edge has no SIP socket: --udp-bind and --tcp-bind are empty and TLS is off; give one of them an address")
		}
	}
	if o.shared.MetricsBind != "" {
		ls = append(ls, edge.Listener{Flag: "--metrics-bind", Network: "tcp", Addr: o.shared.MetricsBind})
	}
	// All held at once, then released: two flags naming one port clash here
	// as they would at start-up.
	var held []io.Closer
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for _, l := range ls {
		c, err := tryListen(l.Network, l.Addr)
		if err != nil {
			return fmt.Errorf("%s %s: %w", l.Flag, l.Addr, err)
		}
		held = append(held, c)
	}
	return nil
}

func tryListen(network, addr string) (io.Closer, error) {
	if network == "udp" {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return nil, bindError(err)
		}
		return c, nil
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, bindError(err)
	}
	return l, nil
}

// bindError says what a failed bind means and what to do about it.
func bindError(err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return errors.New("the port is in use by another process: stop it or choose another port")
	case errors.Is(err, syscall.EACCES):
		return errors.New("permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port above 1023")
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return errors.New("no interface of this machine has that address")
	}
	return err
}
