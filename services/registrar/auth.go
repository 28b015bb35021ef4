package registrar

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/siphon-lab/siphon/pkg/store"
)

// authenticator is RFC 3261 §22 digest with RFC 7616/8760 algorithms. Hashing is
// icholy/digest's; what is written here is the server side it lacks: nonces any
// replica can verify (time-stamped, HMAC-signed with a secret shared through the
// store), nonce-count replay refusal and lock-outs in the shared store, and
// answers that do not tell known users from unknown ones.
type authenticator struct {
	realm       string
	algorithms  []string
	users       map[string]Credentials
	nonceTTL    time.Duration
	maxFailures int64
	lockout     time.Duration
	secret      []byte
	eph         store.Ephemeral
	// dummy is checked for unknown users, so they cost the same work.
	dummy string
}

// verdict of a check.
type verdict int

const (
	authOK        verdict = iota
	authChallenge         // 401: no or wrong credentials
	authStale             // 401 stale=true: right credentials, expired nonce
	authLocked            // 403: too many failures
)

// nonce layout: 8 bytes issue time (Unix ms), 8 random bytes, 16 bytes of
// HMAC-SHA256 over both and the realm; base64url.
const nonceLen = 8 + 8 + 16

func (a *authenticator) nonce(now time.Time) string {
	var b [nonceLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli()))
	_, _ = rand.Read(b[8:16])
	copy(b[16:], a.sign(b[:16]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *authenticator) sign(payload []byte) []byte {
	m := hmac.New(sha256.New, a.secret)
	m.Write(payload)
	m.Write([]byte(a.realm))
	return m.Sum(nil)[:16]
}

// checkNonce reports whether n is a nonce this lab issued, and whether it is
// still fresh.
func (a *authenticator) checkNonce(n string, now time.Time) (genuine, fresh bool) {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != nonceLen || !hmac.Equal(b[16:], a.sign(b[:16])) {
		return false, false
	}
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8])))
	return true, now.Sub(issued) <= a.nonceTTL && !issued.After(now.Add(time.Minute))
}

// challenges are the WWW-Authenticate headers of a 401: one per algorithm,
// strongest first, sharing one nonce.
func (a *authenticator) challenges(now time.Time, stale bool) []sip.Header {
	n := a.nonce(now)
	out := make([]sip.Header, 0, len(a.algorithms))
	for _, alg := range a.algorithms {
		v := fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=%s, qop="auth"`, a.realm, n, alg)
		if stale {
			v += ", stale=true"
		}
		out = append(out, sip.NewHeader("WWW-Authenticate", v))
	}
	return out
}

// check authenticates req from source. It returns the user on success.
func (a *authenticator) check(ctx context.Context, req *sip.Request, source string, now time.Time) (string, verdict, error) {
	h := req.GetHeader("Authorization")
	if h == nil {
		// A challenge costs nothing and tells nothing, locked out or not: no
		// store trip for the first leg of every registration.
		return "", authChallenge, nil
	}
	creds, _ := digest.ParseCredentials(h.Value())
	user := ""
	if creds != nil {
		user = creds.Username
	}
	locked, err := a.locked(ctx, source, user)
	if err != nil || locked {
		return "", authLocked, err
	}
	if creds == nil {
		return "", authChallenge, a.fail(ctx, source, "")
	}
	ok, fresh, err := a.verify(ctx, req, creds, now)
	switch {
	case err != nil:
		return "", authChallenge, err
	case !ok:
		return "", authChallenge, a.fail(ctx, source, user)
	case !fresh:
		return "", authStale, nil
	}
	// A nonce-count is good once (RFC 7616 §3.4): a replay is refused.
	first, err := a.eph.Claim(ctx, "digest-nc:"+creds.Nonce+":"+fmt.Sprintf("%08x", creds.Nc), a.nonceTTL+time.Minute)
	if err != nil {
		return "", authChallenge, err
	}
	if !first {
		return "", authChallenge, a.fail(ctx, source, user)
	}
	return user, authOK, nil
}

// verify checks the response digest; fresh is false when the nonce is genuine
// but expired.
func (a *authenticator) verify(_ context.Context, req *sip.Request, creds *digest.Credentials, now time.Time) (ok, fresh bool, err error) {
	alg := strings.ToUpper(creds.Algorithm)
	if alg == "" {
		alg = "MD5"
	}
	offered := false
	for _, x := range a.algorithms {
		offered = offered || x == alg
	}
	genuine, fresh := a.checkNonce(creds.Nonce, now)
	if !offered || !genuine || creds.Realm != a.realm || creds.QOP != "auth" || creds.Nc <= 0 || !sameURI(creds.URI, req.Recipient) {
		return false, false, nil
	}
	opts := digest.Options{Method: string(req.Method), URI: creds.URI, Count: creds.Nc, Cnonce: creds.Cnonce, Username: creds.Username}
	entry, known := a.users[creds.Username]
	switch {
	case known && entry.HA1[alg] != "":
		opts.A1 = entry.HA1[alg]
	case known && entry.Password != "":
		opts.Password = entry.Password
	default:
		known = false
		opts.Password = a.dummy
	}
	want, err := digest.Digest(&digest.Challenge{Realm: a.realm, Nonce: creds.Nonce, Algorithm: alg, QOP: []string{"auth"}}, opts)
	if err != nil {
		return false, false, fmt.Errorf("registrar: digest: %w", err)
	}
	match := subtle.ConstantTimeCompare([]byte(want.Response), []byte(strings.ToLower(creds.Response))) == 1
	return match && known, fresh, nil
}

// sameURI compares the digest uri directive with the Request-URI by user, host
// and port, as clients format URIs differently.
func sameURI(digestURI string, ruri sip.Uri) bool {
	var u sip.Uri
	if err := sip.ParseUri(digestURI, &u); err != nil {
		return false
	}
	return strings.EqualFold(u.Host, ruri.Host) && u.User == ruri.User && u.Port == ruri.Port
}

func (a *authenticator) locked(ctx context.Context, source, user string) (bool, error) {
	keys := []string{"authfail:src:" + host(source)}
	if user != "" {
		keys = append(keys, "authfail:user:"+user)
	}
	counts, err := a.eph.Counts(ctx, keys...)
	if err != nil {
		return false, fmt.Errorf("registrar: lock-out: %w", err)
	}
	for _, n := range counts {
		if n >= a.maxFailures {
			return true, nil
		}
	}
	return false, nil
}

func (a *authenticator) fail(ctx context.Context, source, user string) error {
	keys := []string{"authfail:src:" + host(source)}
	if user != "" {
		keys = append(keys, "authfail:user:"+user)
	}
	for _, k := range keys {
		if _, err := a.eph.Incr(ctx, k, a.lockout); err != nil {
			return fmt.Errorf("registrar: count failure %s: %w", k, err)
		}
	}
	return nil
}

func host(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i > 0 && !strings.HasSuffix(hostport, "]") {
		return strings.Trim(hostport[:i], "[]")
	}
	return hostport
}
