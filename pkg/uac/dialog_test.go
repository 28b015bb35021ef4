package uac

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestDialogRequest: RFC 3261 §12.2.1.1 — loose routing keeps the remote target
// as Request-URI and the route set as Route; strict routing puts the first
// route in the Request-URI and the remote target last in Route.
func TestDialogRequest(t *testing.T) {
	base := Dialog{
		CallID: "c1@test", LocalURI: `"Lab" <sip:lab@192.0.2.1>`, LocalTag: "l1",
		RemoteURI: "<sip:bob@example.com>", RemoteTag: "r1", RemoteTarget: "sip:bob@192.0.2.9:5070",
		Contact: "sip:lab@192.0.2.1:5060", UserAgent: "siphond/test",
	}
	tests := []struct {
		name     string
		routes   []string
		wantRURI string
		want     []string
	}{
		{"no route set", nil, "sip:bob@192.0.2.9:5070", nil},
		{"loose", []string{"<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"}, "sip:bob@192.0.2.9:5070",
			[]string{"<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"}},
		{"strict", []string{"<sip:p1.example.com>", "<sip:p2.example.com;lr>"}, "sip:p1.example.com",
			[]string{"<sip:p2.example.com;lr>", "<sip:bob@192.0.2.9:5070>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base
			d.RouteSet = tt.routes
			req, err := d.Request(sip.BYE, 7, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			// What goes on the wire, parsed back.
			msg, err := sip.ParseMessage([]byte(req.String()))
			if err != nil {
				t.Fatalf("%v:\n%s", err, req)
			}
			got := msg.(*sip.Request)
			if got.Recipient.String() != tt.wantRURI {
				t.Errorf("Request-URI %s, want %s", got.Recipient.String(), tt.wantRURI)
			}
			routes := got.GetHeaders("Route")
			if len(routes) != len(tt.want) {
				t.Fatalf("Route %v, want %v", routes, tt.want)
			}
			for i, r := range routes {
				if r.Value() != tt.want[i] {
					t.Errorf("Route %d: %s, want %s", i, r.Value(), tt.want[i])
				}
			}
			if ft, _ := got.From().Params.Get("tag"); ft != "l1" || got.From().DisplayName != "Lab" {
				t.Errorf("From %s", got.From().Value())
			}
			if tt, _ := got.To().Params.Get("tag"); tt != "r1" {
				t.Errorf("To %s", got.To().Value())
			}
			if got.CSeq().SeqNo != 7 || got.CSeq().MethodName != sip.BYE || got.CallID().Value() != "c1@test" {
				t.Errorf("CSeq %s, Call-ID %s", got.CSeq().Value(), got.CallID().Value())
			}
			if mf := got.MaxForwards(); mf == nil || mf.Val() != 70 {
				t.Errorf("Max-Forwards %v", mf)
			}
			if c := got.Contact(); c == nil || c.Address.String() != "sip:lab@192.0.2.1:5060" {
				t.Errorf("Contact %v", c)
			}
		})
	}
}

func TestInitialRequestHasNoToTag(t *testing.T) {
	d := Dialog{CallID: "c2", LocalURI: "<sip:a@h>", LocalTag: "l", RemoteURI: "<sip:b@h>", RemoteTarget: "sip:b@h"}
	req, err := d.Request(sip.INVITE, 1, "application/sdp", []byte("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if req.To().Params.Has("tag") {
		t.Fatalf("initial INVITE with a To tag: %s", req.To().Value())
	}
	if ct := req.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/sdp" || req.ContentLength().Value() != "5" {
		t.Fatalf("body headers: %v %v", ct, req.ContentLength())
	}
	if _, err := (Dialog{RemoteTarget: "not a uri at all <"}).Request(sip.BYE, 1, "", nil); err == nil {
		t.Fatal("a broken remote target built a request")
	}
}
