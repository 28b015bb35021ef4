package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/siphon-lab/siphon/pkg/sipmsg"
	"github.com/siphon-lab/siphon/pkg/store"
)

// Kind is who challenges: a registrar or UAS (401, WWW-Authenticate,
// Authorization) or a proxy (407, Proxy-Authenticate, Proxy-Authorization),
// RFC 3261 §22.2 and §22.3.
type Kind int

const (
	// Server is the 401 kind.
	Server Kind = iota
	// Proxy is the 407 kind.
	Proxy
)

// ChallengeHeader names the header that carries a challenge of this kind.
func (k Kind) ChallengeHeader() string {
	if k == Proxy {
		return "Proxy-Authenticate"
	}
	return "WWW-Authenticate"
}

// CredentialsHeader names the header that answers a challenge of this kind.
func (k Kind) CredentialsHeader() string {
	if k == Proxy {
		return "Proxy-Authorization"
	}
	return "Authorization"
}

// Verdict of a check.
type Verdict int

const (
	// OK: the credentials are good, for the user Check returns.
	OK Verdict = iota
	// Challenge (401/407): no or wrong credentials.
	Challenge
	// Stale (401/407 with stale=true): right credentials, expired nonce.
	Stale
	// Locked (403): too many failures from the source or for the user.
	Locked
)

// Authenticator checks digest credentials. Hashing is icholy/digest's; what is
// written here is the server side it lacks: nonces any replica can verify
// (time-stamped, HMAC-signed with a secret shared through the store),
// nonce-count replay refusal and lock-outs in the shared store, and answers
// that do not tell known users from unknown ones.
type Authenticator struct {
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

// New makes the authenticator of cfg, with the nonce secret every replica of
// the lab shares from backend.
func New(ctx context.Context, cfg Config, backend store.Backend) (*Authenticator, error) {
	secret, err := backend.Secrets().Secret(ctx, "digest-nonce", 32)
	if err != nil {
		return nil, fmt.Errorf("auth: nonce secret: %w", err)
	}
	dummy := make([]byte, 16)
	_, _ = rand.Read(dummy)
	return &Authenticator{
		realm: cfg.Realm, algorithms: cfg.AlgorithmList(), users: cfg.Users,
		nonceTTL: cfg.NonceTTL, maxFailures: int64(cfg.MaxFailures), lockout: cfg.Lockout,
		secret: secret, eph: backend.Ephemeral(), dummy: hex.EncodeToString(dummy),
	}, nil
}

// Knows reports whether user is in the users file.
func (a *Authenticator) Knows(user string) bool {
	_, ok := a.users[user]
	return ok
}

// nonce layout: 8 bytes issue time (Unix ms), 8 random bytes, 16 bytes of
// HMAC-SHA256 over both and the realm; base64url.
const nonceLen = 8 + 8 + 16

func (a *Authenticator) nonce(now time.Time) string {
	var b [nonceLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli()))
	_, _ = rand.Read(b[8:16])
	copy(b[16:], a.sign(b[:16]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *Authenticator) sign(payload []byte) []byte {
	m := hmac.New(sha256.New, a.secret)
	m.Write(payload)
	m.Write([]byte(a.realm))
	return m.Sum(nil)[:16]
}

// checkNonce reports whether n is a nonce this lab issued, and whether it is
// still fresh.
func (a *Authenticator) checkNonce(n string, now time.Time) (genuine, fresh bool) {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != nonceLen || !hmac.Equal(b[16:], a.sign(b[:16])) {
		return false, false
	}
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8])))
	return true, now.Sub(issued) <= a.nonceTTL && !issued.After(now.Add(time.Minute))
}

// Challenges are the challenge headers of a 401 or 407: one per algorithm,
// strongest first, sharing one nonce.
func (a *Authenticator) Challenges(kind Kind, now time.Time, stale bool) []sip.Header {
	n := a.nonce(now)
	out := make([]sip.Header, 0, len(a.algorithms))
	for _, alg := range a.algorithms {
		v := fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=%s, qop="auth"`, a.realm, n, alg)
		if stale {
			v += ", stale=true"
		}
		out = append(out, sip.NewHeader(kind.ChallengeHeader(), v))
	}
	return out
}

// credentials are the request's answer to our realm: a request may carry
// credentials for several realms, for other proxies too (RFC 3261 §22.3).
func (a *Authenticator) credentials(kind Kind, req *sip.Request) (*digest.Credentials, bool) {
	hs := req.GetHeaders(kind.CredentialsHeader())
	if len(hs) == 0 {
		return nil, false
	}
	for _, h := range hs {
		c, err := digest.ParseCredentials(h.Value())
		if err != nil {
			return nil, true // unparseable: counted as a failure below
		}
		if c.Realm == a.realm {
			return c, true
		}
	}
	// Only other realms' (a proxy further on asked for them): a plain
	// challenge for ours, not a failed attempt.
	return nil, false
}

// Consume takes our realm's credentials off req before a proxy forwards it:
// they are for this hop only.
func (a *Authenticator) Consume(kind Kind, req *sip.Request) {
	name := kind.CredentialsHeader()
	hs := req.GetHeaders(name)
	var keep []string
	for _, h := range hs {
		if c, err := digest.ParseCredentials(h.Value()); err != nil || c.Realm != a.realm {
			keep = append(keep, h.Value())
		}
	}
	if len(keep) < len(hs) {
		sipmsg.ReplaceHeaders(req, name, keep...)
	}
}

// Check authenticates req from source. It returns the user on success. The
// digest uri must name the Request-URI, or — when hop is given — this hop:
// SIPp 3.6 puts its remote address there, and a proxy that refused it would
// refuse the test tool its users test with. The digest covers the uri either
// way, so credentials still cannot be moved to another request.
func (a *Authenticator) Check(ctx context.Context, kind Kind, req *sip.Request, source string, now time.Time, hop func(host string, port int) bool) (string, Verdict, error) {
	creds, present := a.credentials(kind, req)
	if !present {
		// A challenge costs nothing and tells nothing, locked out or not: no
		// store trip for the first leg of every registration.
		return "", Challenge, nil
	}
	user := ""
	if creds != nil {
		user = creds.Username
	}
	locked, err := a.locked(ctx, source, user)
	if err != nil || locked {
		return "", Locked, err
	}
	if creds == nil {
		return "", Challenge, a.fail(ctx, source, "")
	}
	ok, fresh, err := a.verify(req, creds, now, hop)
	switch {
	case err != nil:
		return "", Challenge, err
	case !ok:
		return "", Challenge, a.fail(ctx, source, user)
	case !fresh:
		return "", Stale, nil
	}
	// A nonce-count is good once (RFC 7616 §3.4): a replay is refused.
	first, err := a.eph.Claim(ctx, "digest-nc:"+creds.Nonce+":"+fmt.Sprintf("%08x", creds.Nc), a.nonceTTL+time.Minute)
	if err != nil {
		return "", Challenge, err
	}
	if !first {
		return "", Challenge, a.fail(ctx, source, user)
	}
	return user, OK, nil
}

// verify checks the response digest; fresh is false when the nonce is genuine
// but expired.
func (a *Authenticator) verify(req *sip.Request, creds *digest.Credentials, now time.Time, hop func(string, int) bool) (ok, fresh bool, err error) {
	alg := strings.ToUpper(creds.Algorithm)
	if alg == "" {
		alg = "MD5"
	}
	offered := false
	for _, x := range a.algorithms {
		offered = offered || x == alg
	}
	genuine, fresh := a.checkNonce(creds.Nonce, now)
	if !offered || !genuine || creds.Realm != a.realm || creds.QOP != "auth" || creds.Nc <= 0 || !uriMatches(creds.URI, req.Recipient, hop) {
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
		return false, false, fmt.Errorf("auth: digest: %w", err)
	}
	match := subtle.ConstantTimeCompare([]byte(want.Response), []byte(strings.ToLower(creds.Response))) == 1
	return match && known, fresh, nil
}

// uriMatches compares the digest uri directive with the Request-URI by user,
// host and port, as clients format URIs differently; or, with hop, with this hop.
func uriMatches(digestURI string, ruri sip.Uri, hop func(string, int) bool) bool {
	var u sip.Uri
	if err := sip.ParseUri(digestURI, &u); err != nil {
		return false
	}
	if strings.EqualFold(u.Host, ruri.Host) && u.User == ruri.User && u.Port == ruri.Port {
		return true
	}
	return hop != nil && u.User == "" && hop(u.Host, u.Port)
}

// Lock-outs count failures per source and user (--auth-max-failures) and
// per source for any users (sourceFactor times that: one IP trying many
// names). Never per user alone: anyone could then lock alice out.
func (a *Authenticator) locked(ctx context.Context, source, user string) (bool, error) {
	keys := failureKeys(source, user)
	counts, err := a.eph.Counts(ctx, keys...)
	if err != nil {
		return false, fmt.Errorf("auth: lock-out: %w", err)
	}
	for i, n := range counts {
		most := a.maxFailures
		if i == 0 {
			most *= sourceFactor
		}
		if n >= most {
			return true, nil
		}
	}
	return false, nil
}

// sourceFactor is how many times --auth-max-failures one source may fail
// across users: a NAT of many phones is one source.
const sourceFactor = 10

func (a *Authenticator) fail(ctx context.Context, source, user string) error {
	for _, k := range failureKeys(source, user) {
		if _, err := a.eph.Incr(ctx, k, a.lockout); err != nil {
			return fmt.Errorf("auth: count failure %s: %w", k, err)
		}
	}
	return nil
}

// failureKeys are the source's counter, then the source and user's.
func failureKeys(source, user string) []string {
	src := host(source)
	keys := []string{"authfail:src:" + src}
	if user != "" {
		keys = append(keys, "authfail:srcuser:"+src+" "+user)
	}
	return keys
}

func host(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i > 0 && !strings.HasSuffix(hostport, "]") {
		return strings.Trim(hostport[:i], "[]")
	}
	return hostport
}
