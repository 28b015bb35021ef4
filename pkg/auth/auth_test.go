package auth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/store/memstore"
)

func TestNonce(t *testing.T) {
	a := &Authenticator{realm: "r", secret: []byte("k"), nonceTTL: time.Minute}
	now := time.Now()
	n := a.nonce(now)
	if g, f := a.checkNonce(n, now.Add(30*time.Second)); !g || !f {
		t.Fatalf("own nonce: genuine %v fresh %v", g, f)
	}
	if g, f := a.checkNonce(n, now.Add(2*time.Minute)); !g || f {
		t.Fatalf("old nonce: genuine %v fresh %v, want genuine and stale", g, f)
	}
	other := &Authenticator{realm: "r", secret: []byte("other"), nonceTTL: time.Minute}
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
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
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

// TestConsume: only our realm's credentials are taken off; another proxy's
// stay, in order.
func TestConsume(t *testing.T) {
	a := &Authenticator{realm: "ours"}
	req := sip.NewRequest(sip.INVITE, sip.Uri{User: "bob", Host: "example.com"})
	for _, realm := range []string{"up", "ours", "down"} {
		req.AppendHeader(sip.NewHeader("Proxy-Authorization", `Digest username="u", realm="`+realm+`", nonce="n", uri="sip:bob@example.com", response="r"`))
	}
	a.Consume(Proxy, req)
	hs := req.GetHeaders("Proxy-Authorization")
	if len(hs) != 2 || !strings.Contains(hs[0].Value(), `"up"`) || !strings.Contains(hs[1].Value(), `"down"`) {
		t.Fatalf("after Consume: %v, want the up and down realms' credentials", hs)
	}
}

// TestOtherRealmsAreNoFailure: credentials for another proxy's realm only are
// a plain challenge for ours, never counted towards a lock-out.
func TestOtherRealmsAreNoFailure(t *testing.T) {
	cfg := Config{Realm: "ours", Algorithms: "MD5", NonceTTL: time.Minute, MaxFailures: 1, Lockout: time.Minute, Users: DefaultUsers}
	a, err := New(context.Background(), cfg, memstore.New(time.Now))
	if err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.INVITE, sip.Uri{User: "bob", Host: "example.com"})
	req.AppendHeader(sip.NewHeader("Proxy-Authorization", `Digest username="alice", realm="theirs", nonce="n", uri="sip:bob@example.com", response="r"`))
	for range 3 {
		if _, v, err := a.Check(context.Background(), Proxy, req, "192.0.2.9:5060", time.Now(), nil); err != nil || v != Challenge {
			t.Fatalf("other realm's credentials: verdict %v, %v; want a plain challenge every time", v, err)
		}
	}
}
