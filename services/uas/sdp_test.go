package uas

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

func offer(media ...string) []byte {
	s := "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
	for _, m := range media {
		s += m
	}
	return []byte(s)
}

const (
	pcmuPcmaDTMF = "m=audio 49170 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
	g729Only     = "m=audio 49170 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
	vp9Video     = "m=video 51372 RTP/AVP 98\r\na=rtpmap:98 VP9/90000\r\n"
)

// streams parses an answer into, per m= line: port, formats, direction.
func streams(t *testing.T, answer []byte) []string {
	t.Helper()
	var s sdp.SessionDescription
	if err := s.Unmarshal(answer); err != nil {
		t.Fatalf("answer does not parse: %v\n%s", err, answer)
	}
	var out []string
	for _, m := range s.MediaDescriptions {
		dir := ""
		for _, k := range []string{"sendrecv", "sendonly", "recvonly", "inactive"} {
			if _, ok := m.Attribute(k); ok {
				dir = k
			}
		}
		out = append(out, m.MediaName.Media+" "+m.MediaName.Port.String()+" "+strings.Join(m.MediaName.Formats, ",")+" "+dir)
	}
	return out
}

func TestAnswer(t *testing.T) {
	audio, _ := LoadCapabilities("audio-only")
	tests := []struct {
		name  string
		offer []byte
		want  []string
		err   error
	}{
		{"offerer order and payload types, DTMF kept", offer(pcmuPcmaDTMF), []string{"audio 40000 8,0,101 sendrecv"}, nil},
		{"sendonly mirrored", offer(pcmuPcmaDTMF + "a=sendonly\r\n"), []string{"audio 40000 8,0,101 recvonly"}, nil},
		{"recvonly mirrored", offer(pcmuPcmaDTMF + "a=recvonly\r\n"), []string{"audio 40000 8,0,101 sendonly"}, nil},
		{"inactive kept", offer(pcmuPcmaDTMF + "a=inactive\r\n"), []string{"audio 40000 8,0,101 inactive"}, nil},
		{"stream without a common codec refused", offer(pcmuPcmaDTMF, vp9Video), []string{"audio 40000 8,0,101 sendrecv", "video 0 98 "}, nil},
		{"static payload without rtpmap", offer("m=audio 49170 RTP/AVP 0\r\n"), []string{"audio 40000 0 sendrecv"}, nil},
		{"nothing in common", offer(g729Only), nil, ErrNoCommonMedia},
		{"DTMF alone is nothing", offer("m=audio 49170 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n"), nil, ErrNoCommonMedia},
		{"malformed", []byte("this is not SDP"), nil, ErrMalformedSDP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans, err := audio.Answer(tt.offer, "192.0.2.1", 7, 1)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got := streams(t, ans); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("streams %q, want %q\n%s", got, tt.want, ans)
			}
		})
	}
}

func TestAnswerVersionAndAddress(t *testing.T) {
	audio, _ := LoadCapabilities("audio-only")
	ans, err := audio.Answer(offer(pcmuPcmaDTMF), "192.0.2.1", 7, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ans), "o=siphon 7 3 IN IP4 192.0.2.1") || !strings.Contains(string(ans), "c=IN IP4 192.0.2.1") {
		t.Fatalf("origin or connection wrong:\n%s", ans)
	}
}

func TestProfiles(t *testing.T) {
	none, err := LoadCapabilities("none")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Answer(offer(pcmuPcmaDTMF), "192.0.2.1", 1, 1); !errors.Is(err, ErrNoCommonMedia) {
		t.Fatalf("profile none took a stream: %v", err)
	}
	av, _ := LoadCapabilities("audio-video")
	ans, err := av.Answer(offer(pcmuPcmaDTMF, "m=video 51372 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"), "192.0.2.1", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := streams(t, ans); len(got) != 2 || !strings.HasPrefix(got[1], "video 40002 96 ") {
		t.Fatalf("audio-video: %q", got)
	}

	// A file profile: its media and codecs are what the UAS takes.
	path := filepath.Join(t.TempDir(), "caps.sdp")
	os.WriteFile(path, []byte("v=0\r\no=x 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"+
		"m=audio 0 RTP/AVP 8 9\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n"), 0o600)
	file, err := LoadCapabilities(path)
	if err != nil {
		t.Fatal(err)
	}
	ans, err = file.Answer(offer(pcmuPcmaDTMF), "192.0.2.1", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := streams(t, ans); len(got) != 1 || got[0] != "audio 40000 8 sendrecv" {
		t.Fatalf("file profile (PCMA, G722) answering PCMA, PCMU, DTMF: %q", got)
	}
	if _, err := LoadCapabilities(filepath.Join(t.TempDir(), "missing.sdp")); err == nil {
		t.Fatal("a missing SDP file was accepted")
	}

	// Late offer: the UAS's own offer lists the profile's codecs.
	off, err := av.Offer("192.0.2.1", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := streams(t, off); len(got) != 2 || got[0] != "audio 40000 0,8,101 sendrecv" {
		t.Fatalf("offer: %q", got)
	}
}
