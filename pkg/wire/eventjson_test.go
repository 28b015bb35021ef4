package wire

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// The hand-written encoder must produce json.Marshal's bytes: subscribers
// decode events with encoding/json and users read them with jq.
func TestBindingEventJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 21, 0, 0, 123456789, time.UTC)
	cases := []BindingEvent{
		{},
		{Event: EventBindingAdded, At: at, Binding: store.Binding{
			AOR: "sip:alice@example.com", Contact: "<sip:alice@127.0.0.1:5070;transport=udp>", Q: 0.5, QSet: true,
			Expires: at.Add(time.Hour), CallID: "a84b4c76e66710@pc33", CSeq: 4294967295,
			Path: []string{"<sip:p1.example.com;lr>", "<sip:p2;lr>"}, Instance: `"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"`,
			RegID: 1, Edge: "edge-1", Transport: "UDP", Source: "127.0.0.1:5070", Flow: "udp:127.0.0.1:5070",
			UserAgent: "baresip v1.0.0 (x86_64/linux)", Updated: at.In(time.FixedZone("CET", 3600))}},
		{Event: "x", Binding: store.Binding{Q: 1, CallID: "\x00\x1f\"\\<>&\b\f\n\r\t\u2028\u2029\xff\xfeé€😀"}},
		{Binding: store.Binding{Q: 1e-7}}, {Binding: store.Binding{Q: 0.001}}, {Binding: store.Binding{Q: 123456789.125}},
		{At: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		s := make([]byte, rng.IntN(12))
		for i := range s {
			s[i] = byte(rng.IntN(256))
		}
		cases = append(cases, BindingEvent{Event: string(s), Binding: store.Binding{UserAgent: string(s), Q: rng.Float64()}})
	}
	for _, ev := range cases {
		want, err := json.Marshal(ev)
		if err != nil {
			want = []byte("<error>")
		}
		got := ev.AppendJSON(nil)
		if err == nil && string(got) != string(want) {
			t.Fatalf("AppendJSON(%+v)\n got %s\nwant %s", ev, got, want)
		}
	}
}

func BenchmarkBindingEventJSON(b *testing.B) {
	at := time.Now()
	ev := BindingEvent{Event: EventBindingAdded, At: at, Binding: store.Binding{AOR: "sip:user000001@127.0.0.1",
		Contact: "<sip:user000001@127.0.0.1:5091;transport=UDP>", Q: 1, Expires: at, CallID: "1-31173@127.0.0.1", CSeq: 1,
		Edge: "edge-1", Transport: "UDP", Source: "127.0.0.1:5091", Flow: "udp:127.0.0.1:5091", Updated: at}}
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(ev)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = ev.AppendJSON(buf[:0])
		}
	})
}

func TestEventSubjectIsTemplate(t *testing.T) {
	for _, c := range [][2]string{{RoleRegistrar, EventBindingAdded}, {RoleUAS, EventCallEnded}, {"a", "b.c"}} {
		if got, want := Event(c[0], c[1]), fmt.Sprintf(EventT, c[0], c[1]); got != want {
			t.Errorf("Event(%q, %q) = %q, want %q (EventT)", c[0], c[1], got, want)
		}
	}
}
