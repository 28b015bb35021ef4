// Package sipdns finds the servers for a SIP URI by RFC 3263 §4: the
// transport from the URI, else NAPTR (SIP+D2U, SIP+D2T, SIPS+D2T), else SRV
// for each transport; the port from the URI, else SRV; the addresses by A and
// AAAA. Go's resolver has no NAPTR query: the queries are miekg/dns's, sent
// to the system's first nameserver (/etc/resolv.conf) or to the one given.
package sipdns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/miekg/dns"
)

// Target is one server to try, in order.
type Target struct {
	Transport string // udp, tcp or tls
	Addr      string // ip:port
}

// Resolver sends RFC 3263's queries to one nameserver.
type Resolver struct {
	server string
	client *dns.Client
}

// New makes a resolver that asks server (host:port); "" takes the first
// nameserver of /etc/resolv.conf.
func New(server string) (*Resolver, error) {
	if server == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(conf.Servers) == 0 {
			return nil, fmt.Errorf("sipdns: no nameserver in /etc/resolv.conf: %v", err)
		}
		server = net.JoinHostPort(conf.Servers[0], conf.Port)
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		return nil, fmt.Errorf("sipdns: nameserver %q: want host:port", server)
	}
	return &Resolver{server: server, client: &dns.Client{Timeout: 2 * time.Second}}, nil
}

// ErrNoServer: the URI's host has no SIP server by any of RFC 3263's records.
var ErrNoServer = errors.New("sipdns: no SIP server found")

// naptrServices maps RFC 3263 §4.1's NAPTR services to transports.
var naptrServices = map[string]string{"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}

// srvPrefix is the SRV name prefix of a transport (§4.1).
func srvPrefix(transport string, sips bool) string {
	switch {
	case transport == "tls" || sips:
		return "_sips._tcp."
	case transport == "tcp":
		return "_sip._tcp."
	}
	return "_sip._udp."
}

// Resolve lists the servers to try for u, in order.
func (r *Resolver) Resolve(ctx context.Context, u sip.Uri) ([]Target, error) {
	sips := strings.EqualFold(u.Scheme, "sips")
	transport := ""
	if tp, ok := u.UriParams.Get("transport"); ok && tp != "" {
		transport = strings.ToLower(tp)
	}
	if sips && transport == "tcp" {
		// RFC 3261 §26.2.2: sips is TLS over TCP, whatever ;transport says.
		transport = "tls"
	}
	host := strings.Trim(u.Host, "[]")
	// §4.1/§4.2: a numeric host, or a port, needs no NAPTR or SRV.
	if ip := net.ParseIP(host); ip != nil || u.Port != 0 {
		if transport == "" {
			transport = "udp"
			if sips {
				transport = "tls"
			}
		}
		port := u.Port
		if port == 0 {
			port = defaultPort(transport)
		}
		if ip != nil {
			return []Target{{transport, net.JoinHostPort(host, strconv.Itoa(port))}}, nil
		}
		return r.addresses(ctx, host, port, transport)
	}
	var srvs []srvName
	if transport == "" {
		naptrs, err := r.naptr(ctx, host, sips)
		if err != nil {
			return nil, err
		}
		srvs = naptrs
		if len(srvs) == 0 {
			// §4.1: no NAPTR — an SRV query per transport this lab supports.
			for _, tp := range []string{"udp", "tcp", "tls"} {
				if sips && tp != "tls" {
					continue
				}
				srvs = append(srvs, srvName{srvPrefix(tp, sips) + dns.Fqdn(host), tp})
			}
		}
	} else {
		srvs = []srvName{{srvPrefix(transport, sips) + dns.Fqdn(host), transport}}
	}
	// One record set that fails (SERVFAIL, a timeout) is passed over: the
	// others may still name servers.
	var out []Target
	var failed error
	for _, s := range srvs {
		ts, err := r.srv(ctx, s)
		if err != nil {
			failed = err
			continue
		}
		out = append(out, ts...)
	}
	if len(out) > 0 {
		return out, nil
	}
	if failed != nil {
		return nil, failed
	}
	// §4.2: no SRV — the host's own addresses at the transport's default port.
	if transport == "" {
		transport = "udp"
		if sips {
			transport = "tls"
		}
	}
	return r.addresses(ctx, host, defaultPort(transport), transport)
}

type srvName struct{ name, transport string }

func (r *Resolver) naptr(ctx context.Context, host string, sips bool) ([]srvName, error) {
	rrs, err := r.query(ctx, host, dns.TypeNAPTR)
	if err != nil {
		return nil, err
	}
	var ns []*dns.NAPTR
	for _, rr := range rrs {
		if n, ok := rr.(*dns.NAPTR); ok && strings.EqualFold(n.Flags, "s") {
			tp, known := naptrServices[strings.ToUpper(n.Service)]
			if known && (!sips || tp == "tls") {
				ns = append(ns, n)
			}
		}
	}
	slices.SortStableFunc(ns, func(a, b *dns.NAPTR) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.Preference, b.Preference))
	})
	out := make([]srvName, 0, len(ns))
	for _, n := range ns {
		out = append(out, srvName{n.Replacement, naptrServices[strings.ToUpper(n.Service)]})
	}
	return out, nil
}

func (r *Resolver) srv(ctx context.Context, s srvName) ([]Target, error) {
	rrs, err := r.query(ctx, s.name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	var srvs []*dns.SRV
	for _, rr := range rrs {
		if v, ok := rr.(*dns.SRV); ok && v.Target != "." {
			srvs = append(srvs, v)
		}
	}
	// RFC 2782: lowest priority first; within one, the heavier first (a
	// weighted random pick would spread load; a lab wants to know the order).
	slices.SortStableFunc(srvs, func(a, b *dns.SRV) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(b.Weight, a.Weight))
	})
	var out []Target
	for _, v := range srvs {
		ts, err := r.addresses(ctx, strings.TrimSuffix(v.Target, "."), int(v.Port), s.transport)
		if err != nil && !errors.Is(err, ErrNoServer) {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// addresses are host's A and AAAA records at port.
func (r *Resolver) addresses(ctx context.Context, host string, port int, transport string) ([]Target, error) {
	var out []Target
	var failed error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.query(ctx, host, t)
		if err != nil {
			failed = err // the other family may answer
			continue
		}
		for _, rr := range rrs {
			switch v := rr.(type) {
			case *dns.A:
				out = append(out, Target{transport, net.JoinHostPort(v.A.String(), strconv.Itoa(port))})
			case *dns.AAAA:
				out = append(out, Target{transport, net.JoinHostPort(v.AAAA.String(), strconv.Itoa(port))})
			}
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case failed != nil:
		return nil, failed
	}
	return nil, fmt.Errorf("%w for %s", ErrNoServer, host)
}

// query asks one question; a name that does not exist has no records.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	res, _, err := r.client.ExchangeContext(ctx, m, r.server)
	if err != nil {
		return nil, fmt.Errorf("sipdns: %s %s via %s: %w", dns.TypeToString[qtype], name, r.server, err)
	}
	switch res.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return res.Answer, nil
	}
	return nil, fmt.Errorf("sipdns: %s %s via %s: %s", dns.TypeToString[qtype], name, r.server, dns.RcodeToString[res.Rcode])
}

func defaultPort(transport string) int {
	if transport == "tls" {
		return 5061
	}
	return 5060
}
