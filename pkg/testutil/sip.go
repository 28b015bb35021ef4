package testutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// SelfSigned writes cert.pem and key.pem for 127.0.0.1 and localhost into dir
// and returns their paths.
func SelfSigned(t testing.TB, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "siphond"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// SIPClient is a sipgo client on its own ports that trusts any certificate.
func SIPClient(t testing.TB) *sipgo.Client {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("siphon-test"), sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Send sends method to target over transport (udp, tcp or tls) and returns the
// final response, waiting at most within.
func Send(c *sipgo.Client, method sip.RequestMethod, transport, target string, within time.Duration) (*sip.Response, error) {
	scheme := "sip"
	if transport == "tls" {
		scheme = "sips"
	}
	var uri sip.Uri
	if err := sip.ParseUri(scheme+":siphond@"+target+";transport="+transport, &uri); err != nil {
		return nil, err
	}
	req := sip.NewRequest(method, uri)
	req.SetTransport(strings.ToUpper(transport))
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return c.Do(ctx, req)
}

// Metric reads one sample from a Prometheus /metrics URL: the series named name
// whose labels contain every one of labels. ok is false when there is none.
func Metric(t testing.TB, url, name string, labels ...string) (value float64, ok bool) {
	t.Helper()
	for _, s := range series(t, url, name) {
		all := true
		for _, l := range labels {
			all = all && strings.Contains(s.labels, l)
		}
		if all {
			return s.value, true
		}
	}
	return 0, false
}

// MetricSum adds up every series named name at a Prometheus /metrics URL (all
// label values), 0 when there is none.
func MetricSum(t testing.TB, url, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, s := range series(t, url, name) {
		sum += s.value
	}
	return sum
}

type sample struct {
	labels string
	value  float64
}

// series are the samples of the series named name at url, in the text format.
func series(t testing.TB, url, name string) []sample {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out []sample
	for _, line := range strings.Split(string(body), "\n") {
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		sep := strings.LastIndexByte(rest, ' ')
		if v, err := strconv.ParseFloat(rest[sep+1:], 64); err == nil {
			out = append(out, sample{labels: rest[:sep], value: v})
		}
	}
	return out
}
