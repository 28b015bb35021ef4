package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siphon-lab/siphon/pkg/testutil"
)

// TestBaresip: Debian's baresip, headless, as a phone with its default
// configuration but for where its audio comes from and goes: it registers
// as alice against --auth with the default algorithms (its libre gives up a
// registration on any challenge it cannot answer), then calls the uas,
// answering the INVITE's 401 too, and the call is established.
func TestBaresip(t *testing.T) {
	bin := testutil.Binary(t, "baresip", "baresip-core")
	p := start(t, true, "--mode", "full-uas", "--auth")
	dir := t.TempDir()
	tone := filepath.Join(dir, "tone.wav")
	if err := os.WriteFile(tone, wav8k(2), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	config := fmt.Sprintf(`poll_method epoll
sip_listen 127.0.0.1:%d
sip_transports udp
audio_source aufile,%s
audio_player aubridge,nil
audio_alert aubridge,nil
module_path /usr/lib/baresip/modules
module account.so
module g711.so
module aufile.so
module aubridge.so
module menu.so
`, port, tone)
	files := map[string]string{
		"config":   config,
		"accounts": "<sip:alice@" + p.sip + ">;auth_pass=secret123;regint=600\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// -t bounds the run (it quits after 10 s): the call is up well before.
	cmd := exec.Command(bin, "-f", dir, "-t", "10", "-e", "/dial sip:service@"+p.sip)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("baresip: %v\n%s", err, out)
	}
	log := string(out)
	for _, want := range []string{"alice@127.0.0.1: {0/UDP/v4} 200 OK", "Call established: sip:service@" + p.sip} {
		if !strings.Contains(log, want) {
			t.Fatalf("baresip's log lacks %q:\n%s", want, testutil.Tail(log, 3000))
		}
	}
	if n := p.counter(t, "siphon_sip_responses_total", `role="uas"`, `method="INVITE"`, `code="401"`); n < 1 {
		t.Fatalf("the INVITE was not challenged (401s counted %v)", n)
	}
}

// wav8k is secs of a 440 Hz tone, 8 kHz mono S16LE: what baresip's aufile reads.
func wav8k(secs int) []byte {
	n := 8000 * secs
	b := make([]byte, 44+2*n)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 16000)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(v))
	}
	return b
}
