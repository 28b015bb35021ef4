package uas

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/mode"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/sipbus"
)

func request(t *testing.T, method string) *sip.Request {
	t.Helper()
	raw := method + " sip:siphond@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:test@127.0.0.1>;tag=1928301774\r\nTo: <sip:siphond@127.0.0.1>\r\n" +
		"Call-ID: a84b4c76e66710@127.0.0.1\r\nCSeq: 1 " + method + "\r\nContent-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Request)
}

func newUAS(t *testing.T, modeName string) *UAS {
	t.Helper()
	md, err := mode.Lookup(modeName)
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{}, md, "siphond/test", obs.NewMetrics(), slog.New(slog.DiscardHandler))
}

func TestOptions(t *testing.T) {
	tests := []struct {
		mode  string
		allow string
	}{
		{"minimal", "OPTIONS"},
		{"registrar", "OPTIONS, REGISTER"},
		{"call-server", "OPTIONS, INVITE, ACK, BYE, CANCEL, PRACK, INFO, UPDATE"},
		{"subscription-server", "OPTIONS, SUBSCRIBE, NOTIFY"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			u := newUAS(t, tt.mode)
			req, rec := sipbus.NewTestRequest(request(t, "OPTIONS"), "127.0.0.1:5070")
			u.Handlers()["OPTIONS"](req)
			if len(rec.Responses) != 1 {
				t.Fatalf("got %d responses, want 1", len(rec.Responses))
			}
			res := rec.Last()
			if res.StatusCode != 200 {
				t.Fatalf("got %d, want 200", res.StatusCode)
			}
			want := map[string]string{"Allow": tt.allow, "Accept": "application/sdp", "Supported": "", "Server": "siphond/test"}
			for name, value := range want {
				h := res.GetHeader(name)
				if h == nil || h.Value() != value {
					t.Errorf("%s: got %v, want %q", name, h, value)
				}
			}
			if tag, _ := res.To().Params.Get("tag"); tag == "" {
				t.Error("200 to OPTIONS has no To tag (RFC 3261 §8.2.6.2)")
			}
			if via := res.Via(); !via.Params.Has("received") {
				t.Errorf("Via lacks received for an rport request: %s", via)
			}
		})
	}
}

// TestHandlersCoverMode: every method the mode routes to the uas gets an
// answer; unbuilt ones say 501 rather than vanish.
func TestHandlersCoverMode(t *testing.T) {
	u := newUAS(t, "full-uas")
	h := u.Handlers()
	md, _ := mode.Lookup("full-uas")
	for _, r := range md.Routes {
		if _, ok := h[r.Method]; ok != (r.Role == mode.RoleUAS) {
			t.Errorf("%s routed to %s: handler present=%v", r.Method, r.Role, ok)
		}
	}
	req, rec := sipbus.NewTestRequest(request(t, "INFO"), "127.0.0.1:5070")
	h["INFO"](req)
	if res := rec.Last(); res == nil || res.StatusCode != 501 || !strings.Contains(res.GetHeader("Warning").Value(), "INFO") {
		t.Fatalf("INFO: got %v, want 501 with a Warning naming INFO", res)
	}
	ack, rec := sipbus.NewTestRequest(request(t, "ACK"), "127.0.0.1:5070")
	h["ACK"](ack)
	if len(rec.Responses) != 0 {
		t.Fatal("an ACK was answered")
	}
}
