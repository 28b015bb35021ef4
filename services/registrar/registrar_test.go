package registrar

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jonboulle/clockwork"

	"github.com/siphon-lab/siphon/pkg/role/roletest"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/wire"
)

func TestAddressOfRecord(t *testing.T) {
	tests := []struct {
		to, want string
		bad      bool
	}{
		{"<sip:Alice@Example.COM;transport=tcp>", "sip:Alice@example.com", false},
		{"<sips:bob@example.com:5061>", "sips:bob@example.com:5061", false},
		{"<sip:%61lice@example.com>", "sip:alice@example.com", false},
		{"<tel:+15551234>", "", true},
	}
	for _, tt := range tests {
		var h sip.ToHeader
		if _, err := sip.ParseAddressValue(tt.to, &h.Address, &h.Params); err != nil {
			t.Fatal(err)
		}
		got, _, err := addressOfRecord(&h)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.to, got, err, tt.want)
		}
	}
}

// TestRegisterHandler runs the handler with a recorder and the memory store.
func TestRegisterHandler(t *testing.T) {
	r, _ := newRegistrar(t)
	send := func(extra string) *sip.Response { return register(t, r, "h", 1, extra) }
	for _, tt := range []struct {
		name, extra string
		code        int
	}{
		{"too brief", "Contact: <sip:h@192.0.2.1>;expires=30\r\n", 423},
		{"bad q", "Contact: <sip:h@192.0.2.1>;q=2\r\n", 400},
		{"bad expires", "Contact: <sip:h@192.0.2.1>\r\nExpires: soon\r\n", 400},
		{"wildcard without expires", "Contact: *\r\n", 400},
		{"ok", "Contact: <sip:h@192.0.2.1>;expires=99999\r\n", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if res := send(tt.extra); res.StatusCode != tt.code {
				t.Fatalf("got %d, want %d:\n%s", res.StatusCode, tt.code, res)
			}
		})
	}
	if c := send("").GetHeader("Contact"); c == nil || !strings.Contains(c.Value(), "expires=7200") {
		t.Fatalf("query after a clamped registration: %v", c)
	}
}

func newRegistrar(t *testing.T) (*Registrar, *clockwork.FakeClock) {
	t.Helper()
	deps, clock := roletest.Deps("registrar")
	r := &Registrar{cfg: Config{AutoAccept: true, DefaultExpiry: 3600, MinExpiry: 60, MaxExpiry: 7200}}
	r.use(deps)
	if err := r.prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, clock
}

// register sends the handler a REGISTER for user with cseq and extra header lines.
func register(t *testing.T, r *Registrar, user string, cseq int, extra string) *sip.Response {
	t.Helper()
	raw := "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKh" + strconv.Itoa(cseq) + "\r\n" +
		"From: <sip:" + user + "@example.com>;tag=1\r\nTo: <sip:" + user + "@example.com>\r\nCall-ID: " + user + "1\r\nCSeq: " + strconv.Itoa(cseq) + " REGISTER\r\n" +
		extra + "Content-Length: 0\r\n\r\n"
	m, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	req, rec := sipbus.NewTestRequest(m.(*sip.Request), "192.0.2.1:5060")
	r.register(req)
	if len(rec.Responses) != 1 {
		t.Fatalf("%d responses", len(rec.Responses))
	}
	return rec.Last()
}

// TestExpirySweep drives the expiry sweep with the fake clock: a binding is
// announced expired once its time has passed, and only then.
func TestExpirySweep(t *testing.T) {
	r, clock := newRegistrar(t)
	events := make(chan wire.BindingEvent, 4)
	r.publish = func(subject string, data []byte) error {
		var ev wire.BindingEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Error(err)
		}
		if subject != wire.Event(wire.RoleRegistrar, ev.Event) {
			t.Errorf("event %s on %s", ev.Event, subject)
		}
		events <- ev
		return nil
	}
	if res := register(t, r, "short", 1, "Contact: <sip:short@192.0.2.1>;expires=60\r\n"); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	<-events // binding.added

	clock.Advance(59 * time.Second)
	r.expireDue()
	select {
	case ev := <-events:
		t.Fatalf("announced before its expiry: %+v", ev)
	default:
	}
	clock.Advance(time.Second)
	r.expireDue()
	select {
	case ev := <-events:
		if ev.Event != wire.EventBindingExpired || ev.Binding.Contact != "sip:short@192.0.2.1" || !ev.At.Equal(roletest.Start.Add(time.Minute)) {
			t.Fatalf("got %+v, want binding.expired at +60s", ev)
		}
	default:
		t.Fatal("expired binding not announced")
	}

	// The sweep runs expireDue every sweepEvery on the role's clock.
	register(t, r, "again", 1, "Contact: <sip:again@192.0.2.1>;expires=60\r\n")
	<-events
	r.stop = make(chan struct{})
	r.wg.Add(1)
	go r.sweep()
	defer func() { close(r.stop); r.wg.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the sweep's ticker
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	select {
	case ev := <-events:
		if ev.Event != wire.EventBindingExpired || ev.Binding.AOR != "sip:again@example.com" {
			t.Fatalf("sweep announced %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("the sweep never announced the expired binding")
	}
}
