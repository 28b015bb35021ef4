package edge

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/siphon-lab/siphon/pkg/ids"
	"github.com/siphon-lab/siphon/pkg/obs"
	"github.com/siphon-lab/siphon/pkg/testutil"
)

// testEdge is an edge with no sockets and no bus: enough to run its input checks.
func testEdge() *Edge {
	return &Edge{cfg: Config{ID: "edge-test", MaxMessageSize: MaxMessageSize}, metrics: obs.NewMetrics(), ids: ids.New("seed", "test"),
		invites: inFlight[*inviteRelay]{m: map[string]*inviteRelay{}}}
}

// rfc4475Want is what the edge must do with each RFC 4475 message that is not
// simply passed on: the status it answers, or 0 to drop silently. Others must
// reach sipgo untouched (the roles judge them: 420, 415, 483...).
var rfc4475Want = map[string]int{
	"badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "quotbal": 400, "ltgtruri": 400,
	"lwsruri": 400, "lwsstart": 400, "trws": 400, "escruri": 400, "baddate": 400, "regbadct": 400,
	"badaspec": 400, "baddn": 400, "badvers": 505, "mismatch01": 400, "mismatch02": 400,
	"insuf": 400, "unkscm": 416, "novelsc": 416, "multi01": 400, "mcl01": 400,
	"test":     0, // no Via: nowhere to send an answer
	"scalarlg": 0, // malformed responses are dropped
	"bigcode":  0,
}

func TestRFC4475(t *testing.T) {
	dir := filepath.Join(testutil.SharedTestdata(t), "rfc4475")
	manifest, err := os.Open(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer manifest.Close()
	sc := bufio.NewScanner(manifest)
	sc.Scan() // header row
	seen := 0
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		file, class := cols[0], cols[2]
		name := strings.TrimSuffix(file, ".dat")
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		seen++
		t.Run(name, func(t *testing.T) {
			out, resp := testEdge().inspect(data, nil)
			want, judged := rfc4475Want[name]
			switch {
			case !judged:
				if out == nil {
					t.Fatalf("%s message was not passed on (got %q)", class, firstLine(resp))
				}
				if _, err := sip.ParseMessage(out); err != nil && class == "valid" {
					t.Fatalf("sipgo cannot parse a valid message: %v", err)
				}
			case want == 0:
				if out != nil || resp != nil {
					t.Fatalf("want a silent drop, got out=%v resp=%q", out != nil, firstLine(resp))
				}
			default:
				if out != nil {
					t.Fatalf("invalid message passed on, want %d", want)
				}
				// The answer echoes the request's own (malformed) headers, so
				// it is read as text, not with a parser.
				if got := firstLine(resp); !strings.HasPrefix(got, fmt.Sprintf("SIP/2.0 %d ", want)) {
					t.Fatalf("got %q, want %d", got, want)
				}
				for _, h := range []string{"\r\nVia: ", "\r\nWarning: 399 ", "\r\nContent-Length: 0\r\n\r\n"} {
					if !strings.Contains(string(resp), h) {
						t.Fatalf("answer lacks %q:\n%s", h, resp)
					}
				}
			}
		})
	}
	if seen < 50 {
		t.Fatalf("only %d messages in the manifest", seen)
	}
}

// TestRFC5118: IPv6 references are accepted where well formed, and a bare or
// malformed IPv6 Request-URI host is answered 400.
func TestRFC5118(t *testing.T) {
	dir := filepath.Join(testutil.SharedTestdata(t), "rfc5118")
	want400 := map[string]bool{"ipv6-bad.dat": true, "ipv6-bug-abnf-3-colons.dat": true}
	files, err := filepath.Glob(filepath.Join(dir, "*.dat"))
	if err != nil || len(files) < 12 {
		t.Fatalf("rfc5118 files: %d %v", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, resp := testEdge().inspect(data, nil)
			if want400[name] {
				if out != nil || !strings.HasPrefix(firstLine(resp), "SIP/2.0 400 ") {
					t.Fatalf("want 400, got passed=%v %q", out != nil, firstLine(resp))
				}
				return
			}
			if out == nil {
				t.Fatalf("valid message not passed on: %q", firstLine(resp))
			}
			if _, err := sip.ParseMessage(out); err != nil {
				t.Fatalf("sipgo cannot parse a valid message: %v", err)
			}
		})
	}
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line
}

func TestCheckParsed(t *testing.T) {
	build := func(raw string) *sip.Request {
		msg, err := sip.ParseMessage([]byte(strings.ReplaceAll(raw, "\n", "\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		return msg.(*sip.Request)
	}
	const head = "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@y>\nCall-ID: c1\n"
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{"valid", "OPTIONS sip:b@y SIP/2.0\n" + head + "CSeq: 1 OPTIONS\nContent-Length: 0\n\n", 0},
		{"cseq-mismatch", "OPTIONS sip:b@y SIP/2.0\n" + head + "CSeq: 1 INVITE\nContent-Length: 0\n\n", 400},
		{"max-forwards", "OPTIONS sip:b@y SIP/2.0\n" + head + "CSeq: 1 OPTIONS\nMax-Forwards: 256\nContent-Length: 0\n\n", 400},
		{"scheme", "OPTIONS http://b SIP/2.0\n" + head + "CSeq: 1 OPTIONS\nContent-Length: 0\n\n", 416},
		{"tel", "OPTIONS tel:+15551234 SIP/2.0\n" + head + "CSeq: 1 OPTIONS\nContent-Length: 0\n\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkParsed(build(tt.raw)).code; got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// TestCheckRawAddresses: what the roles' parser refuses in a Contact or a
// Content-Type is 400 at the edge (PROTOS c07-sip #1170, #1180, #2150 once
// waited for the role timeout); the odd but valid forms pass.
func TestCheckRawAddresses(t *testing.T) {
	const head = "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n" +
		"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
	tests := []struct {
		name, header string
		want         int
	}{
		{"contact scheme not a scheme", "Contact: 1170 <%s%s:noone@sip.no.invalid>", 400},
		{"contact userinfo of colons", "Contact: 1180 <sip:" + strings.Repeat(":", 40) + "noone@sip.no.invalid>", 400},
		{"contact without user before @", "Contact: <sip:@example.com>", 400},
		{"contact host not a host", "Contact: <sip:alice@exa mple.com>", 400},
		{"blank content type", "Content-Type:    ", 400},
		{"content type without subtype", "Content-Type: application", 400},
		{"contact user and password", "Contact: <sip:alice:secret@192.0.2.1:5060;transport=tcp>", 0},
		{"contact user with ? and ;", "Contact: <sip:1_odd?,/;;*:&pw@example.com;lr?subject=x>", 0},
		{"contact tel URI", "Contact: <tel:+15551234567>", 0},
		{"content type with parameters", "Content-Type: multipart/mixed;boundary=abc", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, v := splitRaw([]byte(head + tt.header + "\r\nContent-Length: 0\r\n\r\n"))
			if v.code == 0 {
				v = m.check()
			}
			if v.code != tt.want {
				t.Fatalf("got %d (%s), want %d", v.code, v.detail, tt.want)
			}
		})
	}
}
