package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/siphon-lab/siphon/pkg/testutil"
)

const usersJSON = `{"alice": "secret123", "bob": "pass456", "carol": {"ha1": {"MD5": "%s"}}}`

func usersFile(t *testing.T, realm string) string {
	t.Helper()
	// carol is given by her MD5 HA1 only: H(carol:realm:carolpw).
	ha1 := md5hex("carol:" + realm + ":carolpw")
	path := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(usersJSON, ha1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// challenge returns the WWW-Authenticate of res for alg.
func challenge(t *testing.T, res *sip.Response, alg string) *digest.Challenge {
	t.Helper()
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		c, err := digest.ParseChallenge(h.Value())
		if err != nil {
			t.Fatalf("challenge %q: %v", h.Value(), err)
		}
		if strings.EqualFold(c.Algorithm, alg) {
			return c
		}
	}
	t.Fatalf("no %s challenge in:\n%s", alg, res)
	return nil
}

// authorization answers chal for user/password at uri with nonce-count nc.
func authorization(t *testing.T, chal *digest.Challenge, user, password, uri string, nc int) string {
	t.Helper()
	cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: uri, Username: user, Password: password, Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	return "Authorization: " + cred.String()
}

// TestDigestAuth: each offered algorithm, wrong passwords, replayed nonce-counts,
// stale nonces, nonces shared by replicas, answers that do not reveal which
// users exist, and lock-outs.
func TestDigestAuth(t *testing.T) {
	redisURL := testutil.Redis(t)
	users := usersFile(t, "lab.test")
	common := []string{"--mode", "registrar", "--auth", "--auth-realm", "lab.test", "--auth-users", users,
		"--auth-nonce-ttl", "2s", "--auth-max-failures", "1000", "--redis", redisURL, "--auth-algorithms", "MD5,SHA-512-256,SHA-256"}
	a := start(t, true, common...)
	b := start(t, true, common...)
	ua := newUAC(t, "udp", a.sip)
	uri := "sip:" + a.sip
	contact := "Contact: <sip:alice@192.0.2.1>"

	first := ua.register("alice", "auth-0", 1, contact)
	expect(t, first, 401)
	var algs []string
	for _, h := range first.GetHeaders("WWW-Authenticate") {
		c, _ := digest.ParseChallenge(h.Value())
		algs = append(algs, c.Algorithm)
		if c.Realm != "lab.test" || len(c.QOP) != 1 || c.QOP[0] != "auth" {
			t.Fatalf("challenge %q: want realm lab.test, qop auth", h.Value())
		}
	}
	if strings.Join(algs, ",") != "MD5,SHA-512-256,SHA-256" {
		t.Fatalf("challenges %v, want one each for MD5, SHA-512-256, SHA-256", algs)
	}

	t.Run("SipgoClientEachAlgorithm", func(t *testing.T) {
		c := client(t)
		for _, alg := range algs {
			t.Run(alg, func(t *testing.T) {
				req := registerRequest(t, a.sip, "bob")
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				res, err := c.Do(ctx, req)
				if err != nil || res.StatusCode != 401 {
					t.Fatalf("first REGISTER: %v %v", res, err)
				}
				// sipgo answers the first challenge: leave it only this algorithm's.
				only := res.Clone()
				for only.RemoveHeader("WWW-Authenticate") {
				}
				only.AppendHeader(sip.NewHeader("WWW-Authenticate", challenge(t, res, alg).String()))
				res, err = c.DoDigestAuth(ctx, req, only, sipgo.DigestAuth{Username: "bob", Password: "pass456"})
				if err != nil || res.StatusCode != 200 {
					t.Fatalf("%s with the right password: %v %v", alg, res, err)
				}
			})
		}
	})

	t.Run("HA1User", func(t *testing.T) {
		res := ua.register("carol", "auth-ha1", 1, "Contact: <sip:carol@192.0.2.1>")
		expect(t, ua.register("carol", "auth-ha1", 2, "Contact: <sip:carol@192.0.2.1>",
			authorization(t, challenge(t, res, "MD5"), "carol", "carolpw", uri, 1)), 200)
	})

	t.Run("WrongPassword", func(t *testing.T) {
		res := ua.register("alice", "auth-1", 1, contact)
		expect(t, ua.register("alice", "auth-1", 2, contact, authorization(t, challenge(t, res, "SHA-256"), "alice", "wrong", uri, 1)), 401)
	})

	t.Run("ReplayedNonceCount", func(t *testing.T) {
		res := ua.register("alice", "auth-2", 1, contact)
		authz := authorization(t, challenge(t, res, "MD5"), "alice", "secret123", uri, 1)
		expect(t, ua.register("alice", "auth-2", 2, contact, authz), 200)
		expect(t, ua.register("alice", "auth-2", 3, contact, authz), 401)
		// The same nonce with the next count is fine (RFC 7616 §3.4).
		expect(t, ua.register("alice", "auth-2", 4, contact, authorization(t, challenge(t, res, "MD5"), "alice", "secret123", uri, 2)), 200)
	})

	t.Run("NonceFromOneReplicaAcceptedByAnother", func(t *testing.T) {
		res := ua.register("alice", "auth-3", 1, contact)
		ub := newUAC(t, "udp", b.sip)
		expect(t, ub.register("alice", "auth-3", 2, contact, authorization(t, challenge(t, res, "SHA-512-256"), "alice", "secret123", "sip:"+b.sip, 1)), 200)
	})

	t.Run("StaleNonce", func(t *testing.T) {
		res := ua.register("alice", "auth-4", 1, contact)
		chal := challenge(t, res, "MD5")
		// Age the nonce past --auth-nonce-ttl (2 s): only time can do that.
		time.Sleep(2200 * time.Millisecond)
		res = ua.register("alice", "auth-4", 2, contact, authorization(t, chal, "alice", "secret123", uri, 1))
		expect(t, res, 401)
		if !challenge(t, res, "MD5").Stale {
			t.Fatalf("an expired nonce with the right password: want stale=true:\n%s", res)
		}
	})

	t.Run("UnknownUserLooksLikeKnownUser", func(t *testing.T) {
		res := ua.register("alice", "auth-5", 1, contact)
		chal := challenge(t, res, "MD5")
		known := ua.register("alice", "auth-5", 2, contact, authorization(t, chal, "alice", "wrong", uri, 1))
		unknown := ua.register("alice", "auth-5", 3, contact, authorization(t, chal, "mallory", "wrong", uri, 2))
		if mask(known) != mask(unknown) {
			t.Fatalf("401s differ beyond nonce and tag:\nknown user:\n%s\nunknown user:\n%s", mask(known), mask(unknown))
		}
	})
}

var (
	nonceRe = regexp.MustCompile(`nonce="[^"]*"`)
	tagRe   = regexp.MustCompile(`;tag=[0-9a-f]+`)
	cseqRe  = regexp.MustCompile(`CSeq: \d+`)
	viaRe   = regexp.MustCompile(`branch=[^;\r\n]+`)
)

// mask blanks what differs by design between two answers: the nonce, the To
// tag (each response gets its own), and the request's own CSeq and branch.
func mask(res *sip.Response) string {
	s := res.String()
	for _, re := range []*regexp.Regexp{nonceRe, tagRe, cseqRe, viaRe} {
		s = re.ReplaceAllString(s, "…")
	}
	return s
}

func registerRequest(t *testing.T, target, user string) *sip.Request {
	t.Helper()
	var ruri sip.Uri
	if err := sip.ParseUri("sip:"+target, &ruri); err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.REGISTER, ruri)
	aor := sip.Uri{Scheme: "sip", User: user, Host: "example.com"}
	req.AppendHeader(&sip.ToHeader{Address: aor})
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", fmt.Sprintf("f%d", time.Now().UnixNano()))
	req.AppendHeader(from)
	req.AppendHeader(sip.NewHeader("Contact", "<sip:"+user+"@192.0.2.7>"))
	req.AppendHeader(sip.NewHeader("Expires", "300"))
	return req
}

// TestDigestLockout: repeated failures lock a user out from the source they
// came from, even with the right password, for every replica (the counts live
// in the store); ten times as many lock the source out.
func TestDigestLockout(t *testing.T) {
	p := start(t, true, "--mode", "registrar", "--auth", "--auth-max-failures", "3", "--auth-lockout", "1m")
	u := newUAC(t, "udp", p.sip)
	uri := "sip:" + p.sip
	contact := "Contact: <sip:alice@192.0.2.1>"
	for i := range 3 {
		res := u.register("alice", "lock-1", 2*i+1, contact)
		expect(t, u.register("alice", "lock-1", 2*i+2, contact, authorization(t, challenge(t, res, "MD5"), "alice", "nope", uri, 1)), 401)
	}
	// Even the right password is refused now; the challenge itself still comes.
	res := u.register("alice", "lock-2", 1, contact)
	expect(t, res, 401)
	res = u.register("alice", "lock-2", 2, contact, authorization(t, challenge(t, res, "MD5"), "alice", "secret123", uri, 1))
	expect(t, res, 403)
	if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "too many failed") {
		t.Fatalf("lock-out without a Warning saying why: %v", w)
	}
	// Another user from that source still gets in (a NAT of many phones is
	// one source), and alice from another source too: no lock-out by user
	// alone, which would let anyone lock her out.
	res = u.register("bob", "lock-3", 1, "Contact: <sip:bob@192.0.2.1>")
	res = u.register("bob", "lock-3", 2, "Contact: <sip:bob@192.0.2.1>", authorization(t, challenge(t, res, "MD5"), "bob", "pass456", uri, 1))
	expect(t, res, 200)
	conn, err := (&net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}}).Dial("udp", p.sip)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	elsewhere := &regUA{t: t, conn: conn, network: "udp", target: p.sip}
	res = elsewhere.register("alice", "lock-4", 1, contact)
	res = elsewhere.register("alice", "lock-4", 2, contact, authorization(t, challenge(t, res, "MD5"), "alice", "secret123", uri, 1))
	expect(t, res, 200)
	// Ten times --auth-max-failures from one source, whatever the users,
	// lock the source out.
	for i := range 30 {
		user := fmt.Sprintf("guess%d", i)
		res := u.register(user, "lock-5", 2*i+1, contact)
		u.register(user, "lock-5", 2*i+2, contact, authorization(t, challenge(t, res, "MD5"), user, "nope", uri, 1))
	}
	res = u.register("bob", "lock-6", 1, "Contact: <sip:bob@192.0.2.1>")
	res = u.register("bob", "lock-6", 2, "Contact: <sip:bob@192.0.2.1>", authorization(t, challenge(t, res, "MD5"), "bob", "pass456", uri, 1))
	expect(t, res, 403)
}

// TestSIPpRegistersWithDigest: SIPp 3.6.1 with [authentication] against the
// default auth configuration (--auth and nothing else), over UDP and TCP.
func TestSIPpRegistersWithDigest(t *testing.T) {
	p := start(t, true, "--mode", "registrar", "--auth")
	csv := filepath.Join(t.TempDir(), "users.csv")
	os.WriteFile(csv, []byte("SEQUENTIAL\n"+
		"alice;[authentication username=alice password=secret123]\n"+
		"bob;[authentication username=bob password=pass456]\n"+
		"test;[authentication username=test password=test]\n"), 0o600)
	for _, transport := range []string{"u1", "t1"} {
		t.Run(transport, func(t *testing.T) {
			sipp(t, "../../bench/sipp/register-auth.xml", transport, p.sip, 3, 30, "-inf", csv).mustPass(t, 3)
		})
	}
	t.Run("WithoutAuth", func(t *testing.T) {
		plain := start(t, true, "--mode", "registrar")
		sipp(t, "../../bench/sipp/register.xml", "u1", plain.sip, 3, 30, "-inf", csv).mustPass(t, 3)
	})
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestUASChallenges: with --auth, the uas and events roles challenge every
// request out of a dialog (401 with the realm's challenge), OPTIONS aside.
func TestUASChallenges(t *testing.T) {
	p := start(t, true, "--mode", "full-uas", "--auth")
	u := newUA(t, p.sip)
	for _, tt := range []struct {
		method string
		hdrs   []string
		body   string
	}{
		{"INVITE", nil, offer},
		{"MESSAGE", []string{"Content-Type: text/plain"}, "hi"},
		{"SUBSCRIBE", []string{"Event: presence", "Expires: 60"}, ""},
	} {
		res := u.call().do(tt.method, tt.hdrs, tt.body)
		wantCode(t, res, 401)
		if h := res.GetHeader("WWW-Authenticate"); h == nil || !strings.Contains(h.Value(), `realm="siphond.local"`) {
			t.Fatalf("%s: 401 without the realm's challenge:\n%s", tt.method, res)
		}
	}
	// A PUBLISH is never inside a dialog: a To tag earns it no pass.
	forged := u.call()
	forged.toTag = "forged"
	wantCode(t, forged.do("PUBLISH", []string{"Event: presence", "Content-Type: application/pidf+xml"}, pidf("sip:alice@example.com", "open", "x")), 401)
	wantCode(t, u.call().do("OPTIONS", nil, ""), 200)
}
