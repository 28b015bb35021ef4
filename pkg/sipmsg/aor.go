package sipmsg

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// AddressOfRecord is the canonical address-of-record of u, as the location
// service keys bindings (RFC 3261 §10.3 step 5): scheme, unescaped user,
// lower-cased host and port, without parameters. The registrar stores by it
// (the REGISTER's To), the proxy looks up by it (the Request-URI).
func AddressOfRecord(u sip.Uri) (aor, user string, err error) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "sip" && scheme != "sips" {
		return "", "", fmt.Errorf("a SIP or SIPS address-of-record is wanted, not %q", u.Scheme)
	}
	user, err = url.PathUnescape(u.User)
	if err != nil || u.Host == "" {
		return "", "", errors.New("malformed address-of-record")
	}
	aor = scheme + ":"
	if user != "" {
		aor += user + "@"
	}
	aor += strings.ToLower(u.Host)
	if u.Port != 0 {
		aor += ":" + strconv.Itoa(u.Port)
	}
	return aor, user, nil
}
