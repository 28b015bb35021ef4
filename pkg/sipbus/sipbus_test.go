package sipbus_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/testutil"
	"github.com/siphon-lab/siphon/pkg/wire"
)

// TestUndecodableIsRefused: a request the role's parser refuses (the edge
// parses only the headers it reads) gets a micro error at once, so the edge
// can answer 400, rather than no reply and the edge's role timeout.
func TestUndecodableIsRefused(t *testing.T) {
	nc := testutil.Conn(t, testutil.NATS(t).ClientURL())
	handled := false
	svc, err := sipbus.Serve(nc, "uas", map[string]sipbus.Handler{"INVITE": func(*sipbus.Request) { handled = true }},
		sipbus.Options{}, obs.NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(t.Context())
	bad := "INVITE sip:service@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1170\r\n" +
		"From: <sip:user@127.0.0.1>;tag=1\r\nTo: <sip:service@127.0.0.1>\r\nCall-ID: 1170@x\r\nCSeq: 1 INVITE\r\n" +
		"Contact: 1170 <%s%s:noone@sip.no.invalid>\r\nContent-Length: 0\r\n\r\n"
	m, err := nc.Request(wire.SIPRequest("uas", "INVITE"), []byte(bad), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := m.Header.Get(wire.HdrServiceErrorCode); code != wire.RefuseBadMessage {
		t.Fatalf("reply error code %q, want %q", code, wire.RefuseBadMessage)
	}
	if e := m.Header.Get(wire.HdrServiceError); !strings.Contains(e, "does not parse") {
		t.Fatalf("reply error %q, want the parser's reason", e)
	}
	if handled {
		t.Fatal("the handler ran on an undecodable request")
	}
}
