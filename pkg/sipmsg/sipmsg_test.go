package sipmsg

import (
	"slices"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/ids"
)

func parse(t *testing.T, raw string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Request)
}

const invite = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1\r\n" +
	"From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\nCall-ID: loop1\r\nCSeq: 1 INVITE\r\n"

func TestOptionTags(t *testing.T) {
	r := parse(t, invite+"Supported: 100rel, Timer\r\nk: path\r\nRequire: 100rel,foo\r\nRequire: bar\r\nContent-Length: 0\r\n\r\n")
	if got := OptionTags(r, "Supported"); !slices.Equal(got, []string{"100rel", "timer", "path"}) {
		t.Errorf("Supported: %v", got)
	}
	if !HasOptionTag(r, "Supported", "TIMER") || HasOptionTag(r, "Supported", "foo") {
		t.Error("HasOptionTag")
	}
	if got := Unsupported(r, "Require", []string{"100rel", "timer"}); !slices.Equal(got, []string{"foo", "bar"}) {
		t.Errorf("Unsupported: %v", got)
	}
}

func TestTakeHop(t *testing.T) {
	r := parse(t, invite+"Max-Forwards: 1\r\nContent-Length: 0\r\n\r\n")
	if !TakeHop(r) || r.MaxForwards().Val() != 0 {
		t.Fatalf("Max-Forwards 1: %v", r.MaxForwards())
	}
	if TakeHop(r) {
		t.Fatal("Max-Forwards 0 forwarded: want 483 (RFC 3261 §16.3 step 3)")
	}
	none := parse(t, invite+"Content-Length: 0\r\n\r\n")
	if !TakeHop(none) || none.MaxForwards().Val() != DefaultMaxForwards {
		t.Fatalf("no Max-Forwards: %v, want 70 (§16.6 step 3)", none.MaxForwards())
	}
}

// TestLooped: a request we forwarded that comes back unchanged has looped
// (482); one retargeted on the way (another Request-URI) spirals.
func TestLooped(t *testing.T) {
	gen := ids.New("loop", "test")
	received := parse(t, invite+"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	ours := func(sentBy string) bool { return sentBy == "192.0.2.50:5060" }
	if Looped(received, ours) {
		t.Fatal("a first visit counts as a loop")
	}
	branch := Branch(LoopKey(received), gen)
	// It comes back through another proxy, our Via below that proxy's.
	back := "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.77:5060;branch=z9hG4bKother\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.50:5060;branch=" + branch + "\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1\r\n" +
		"From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\nCall-ID: loop1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	if !Looped(parse(t, back), ours) {
		t.Fatal("the same request back again is not seen as a loop")
	}
	spiral := parse(t, back)
	spiral.Recipient.User = "bob-mobile" // retargeted downstream
	if Looped(spiral, ours) {
		t.Fatal("a spiral (new Request-URI) taken for a loop")
	}
}
