package registrar

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/sipbus"
	"github.com/siphon-lab/siphon/pkg/store/memstore"
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

func TestNonce(t *testing.T) {
	a := &authenticator{realm: "r", secret: []byte("k"), nonceTTL: time.Minute}
	now := time.Now()
	n := a.nonce(now)
	if g, f := a.checkNonce(n, now.Add(30*time.Second)); !g || !f {
		t.Fatalf("own nonce: genuine %v fresh %v", g, f)
	}
	if g, f := a.checkNonce(n, now.Add(2*time.Minute)); !g || f {
		t.Fatalf("old nonce: genuine %v fresh %v, want genuine and stale", g, f)
	}
	other := &authenticator{realm: "r", secret: []byte("other"), nonceTTL: time.Minute}
	if g, _ := other.checkNonce(n, now); g {
		t.Fatal("a nonce signed with another secret was accepted")
	}
	if g, _ := a.checkNonce(n[:len(n)-2]+"AA", now); g {
		t.Fatal("a tampered nonce was accepted")
	}
}

func TestLoadUsers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	users, err := LoadUsers(write("ok.json", `{"a": "pw", "b": {"ha1": {"md5": "ABC"}}}`))
	if err != nil || users["a"].Password != "pw" || users["b"].HA1["MD5"] != "abc" {
		t.Fatalf("users %+v, %v", users, err)
	}
	for name, body := range map[string]string{"bad.json": `{"a": 1}`, "alg.json": `{"a": {"ha1": {"SHA-1": "x"}}}`, "junk.json": `{`} {
		if _, err := LoadUsers(write(name, body)); err == nil || !strings.Contains(err.Error(), "--auth-users") {
			t.Errorf("%s: %v, want an --auth-users error", name, err)
		}
	}
	if _, err := LoadUsers(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing users file accepted")
	}
}

// TestRegisterHandler runs the handler with a recorder and the memory store.
func TestRegisterHandler(t *testing.T) {
	cfg := Config{AutoAccept: true, DefaultExpiry: 3600, MinExpiry: 60, MaxExpiry: 7200}
	r := New(cfg, memstore.New(nil), "siphond/test", obs.NewMetrics(), slog.New(slog.DiscardHandler))
	if err := r.prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	send := func(extra string) *sip.Response {
		raw := "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKh1\r\n" +
			"From: <sip:h@example.com>;tag=1\r\nTo: <sip:h@example.com>\r\nCall-ID: h1\r\nCSeq: 1 REGISTER\r\n" +
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
