package sipdns

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/sipdns/sipdnstest"
)

// TestResolve follows RFC 3263 §4 against a real DNS server on loopback.
func TestResolve(t *testing.T) {
	zone := sipdnstest.Server(t,
		`example.test. 60 IN NAPTR 20 10 "s" "SIP+D2U" "" _sip._udp.example.test.`,
		`example.test. 60 IN NAPTR 10 10 "s" "SIP+D2T" "" _sip._tcp.example.test.`,
		`example.test. 60 IN NAPTR 30 10 "s" "SIP+D2X" "" _sip._sctp.example.test.`,
		`_sip._tcp.example.test. 60 IN SRV 10 60 5070 a.example.test.`,
		`_sip._udp.example.test. 60 IN SRV 10 0 5080 b.example.test.`,
		`a.example.test. 60 IN A 127.0.0.2`,
		`b.example.test. 60 IN A 127.0.0.3`,
		`plain.test. 60 IN A 127.0.0.4`,
		`_sip._udp.srvonly.test. 60 IN SRV 20 0 5091 d.srvonly.test.`,
		`_sip._udp.srvonly.test. 60 IN SRV 10 0 5090 c.srvonly.test.`,
		`c.srvonly.test. 60 IN A 127.0.0.5`,
		`d.srvonly.test. 60 IN AAAA ::1`,
	)
	r, err := New(zone.Addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		uri  string
		want []Target
		err  error
	}{
		// NAPTR by order (TCP first, unknown services skipped), then SRV, then A.
		{"sip:bob@example.test", []Target{{"tcp", "127.0.0.2:5070"}, {"udp", "127.0.0.3:5080"}}, nil},
		// A transport parameter skips NAPTR: that transport's SRV.
		{"sip:bob@example.test;transport=udp", []Target{{"udp", "127.0.0.3:5080"}}, nil},
		// No NAPTR: SRV per transport, lowest priority first.
		{"sip:bob@srvonly.test", []Target{{"udp", "127.0.0.5:5090"}, {"udp", "[::1]:5091"}}, nil},
		// No NAPTR, no SRV: the host's address at the default port.
		{"sip:bob@plain.test", []Target{{"udp", "127.0.0.4:5060"}}, nil},
		// A port: no NAPTR or SRV (§4.2).
		{"sip:bob@plain.test:5099", []Target{{"udp", "127.0.0.4:5099"}}, nil},
		{"sip:bob@example.test:5099;transport=tcp", nil, ErrNoServer},
		// Numeric hosts need no DNS; sips means TLS on 5061.
		{"sip:bob@192.0.2.1", []Target{{"udp", "192.0.2.1:5060"}}, nil},
		{"sips:bob@192.0.2.1", []Target{{"tls", "192.0.2.1:5061"}}, nil},
		{"sips:bob@192.0.2.1:5071;transport=tcp", []Target{{"tls", "192.0.2.1:5071"}}, nil},
		{"sip:bob@[2001:db8::1]:5070;transport=tcp", []Target{{"tcp", "[2001:db8::1]:5070"}}, nil},
		{"sip:bob@nowhere.test", nil, ErrNoServer},
	} {
		var u sip.Uri
		if err := sip.ParseUri(tt.uri, &u); err != nil {
			t.Fatal(err)
		}
		got, err := r.Resolve(context.Background(), u)
		if !errors.Is(err, tt.err) || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, %v; want %v, %v", tt.uri, got, err, tt.want, tt.err)
		}
	}
}

func TestNewChecksTheServer(t *testing.T) {
	if _, err := New("not-an-address"); err == nil {
		t.Fatal("a nameserver without a port was accepted")
	}
}
