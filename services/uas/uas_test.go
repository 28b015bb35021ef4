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
			// The same replica answers for whatever mode an edge announces.
			other, otherRec := sipbus.NewTestRequest(request(t, "OPTIONS"), "127.0.0.1:5070")
			other.Mode = "minimal"
			newUAS(t, "full-uas").Handlers()["OPTIONS"](other)
			if got := otherRec.Last().GetHeader("Allow").Value(); got != "OPTIONS" {
				t.Fatalf("uas started as full-uas, edge says minimal: Allow %q", got)
			}
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

// TestHandlersCoverMode: every method any mode routes to the uas gets an
// answer; unbuilt ones say 501 rather than vanish.
func TestHandlersCoverMode(t *testing.T) {
	u := newUAS(t, "minimal")
	h := u.Handlers()
	for _, name := range mode.Names() {
		md, _ := mode.Lookup(name)
		for _, r := range md.Routes {
			if _, ok := h[r.Method]; r.Role == mode.RoleUAS && !ok {
				t.Errorf("%s: %s routed to the uas has no handler", name, r.Method)
			}
		}
	}
	if _, ok := h["REGISTER"]; ok {
		t.Error("the uas handles REGISTER, which every mode routes to the registrar")
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
