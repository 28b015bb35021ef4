package uas

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// SDP offer/answer (RFC 3264) for the calls the uas answers. Parsing and writing
// are pion/sdp's; what is written here is the negotiation: which of the
// offered codecs this UAS takes, in the offerer's order, with directions
// mirrored and unusable streams refused with port 0.

// Errors of negotiation, which the INVITE handler maps to responses.
var (
	// ErrMalformedSDP: the offer does not parse (400).
	ErrMalformedSDP = errors.New("malformed SDP")
	// ErrNoCommonMedia: no offered stream has a codec in common (488).
	ErrNoCommonMedia = errors.New("no offered stream has a codec in common")
)

// codec is one payload format this UAS can use.
type codec struct {
	name     string // encoding name, compared without case
	clock    uint32
	channels string
	fmtp     string
	pt       uint8 // the payload type this UAS offers it with
}

func (c codec) matches(o codec) bool {
	return strings.EqualFold(c.name, o.name) && c.clock == o.clock
}

// Capabilities are the media this UAS takes, from --sdp-profile.
type Capabilities struct {
	media map[string][]codec // media type (audio, video) → codecs in preference order
	order []string           // media types as the profile lists them, for offers
}

// staticPayloads are the RFC 3551 static payload types an offer may use
// without an rtpmap.
var staticPayloads = map[uint8]codec{
	0: {name: "PCMU", clock: 8000}, 3: {name: "GSM", clock: 8000}, 4: {name: "G723", clock: 8000},
	8: {name: "PCMA", clock: 8000}, 9: {name: "G722", clock: 8000}, 18: {name: "G729", clock: 8000},
}

var telephoneEvent = codec{name: "telephone-event", clock: 8000, fmtp: "0-16", pt: 101}

// LoadCapabilities reads an --sdp-profile: none, audio-only, audio-video, or a
// path to an SDP file whose media and codecs are what this UAS takes.
func LoadCapabilities(profile string) (Capabilities, error) {
	audio := []codec{{name: "PCMU", clock: 8000, pt: 0}, {name: "PCMA", clock: 8000, pt: 8}, telephoneEvent}
	switch profile {
	case "none":
		return Capabilities{media: map[string][]codec{}}, nil
	case "audio-only":
		return Capabilities{media: map[string][]codec{"audio": audio}, order: []string{"audio"}}, nil
	case "audio-video":
		video := []codec{{name: "H264", clock: 90000, fmtp: "profile-level-id=42e01f;packetization-mode=1", pt: 96}, {name: "VP8", clock: 90000, pt: 97}}
		return Capabilities{media: map[string][]codec{"audio": audio, "video": video}, order: []string{"audio", "video"}}, nil
	}
	data, err := os.ReadFile(profile)
	if err != nil {
		return Capabilities{}, fmt.Errorf("--sdp-profile: %w", err)
	}
	var s sdp.SessionDescription
	if err := s.Unmarshal(data); err != nil {
		return Capabilities{}, fmt.Errorf("--sdp-profile %s: %w", profile, err)
	}
	caps := Capabilities{media: map[string][]codec{}}
	for _, m := range s.MediaDescriptions {
		kind := m.MediaName.Media
		if _, seen := caps.media[kind]; !seen {
			caps.order = append(caps.order, kind)
		}
		for _, f := range m.MediaName.Formats {
			if c, ok := formatCodec(&s, m, f); ok {
				caps.media[kind] = append(caps.media[kind], c)
			}
		}
	}
	if len(caps.order) == 0 {
		return Capabilities{}, fmt.Errorf("--sdp-profile %s: no media", profile)
	}
	return caps, nil
}

// formatCodec resolves one m= format through its rtpmap/fmtp, or the static table.
func formatCodec(s *sdp.SessionDescription, m *sdp.MediaDescription, format string) (codec, bool) {
	pt, err := strconv.ParseUint(format, 10, 8)
	if err != nil {
		return codec{}, false
	}
	c := codec{pt: uint8(pt)}
	for _, a := range m.Attributes {
		switch a.Key {
		case "rtpmap":
			n, rest, _ := strings.Cut(a.Value, " ")
			if n != format {
				continue
			}
			parts := strings.Split(rest, "/")
			c.name = parts[0]
			if len(parts) > 1 {
				clock, _ := strconv.ParseUint(parts[1], 10, 32)
				c.clock = uint32(clock)
			}
			if len(parts) > 2 {
				c.channels = parts[2]
			}
		case "fmtp":
			if n, rest, _ := strings.Cut(a.Value, " "); n == format {
				c.fmtp = rest
			}
		}
	}
	if c.name == "" {
		st, ok := staticPayloads[c.pt]
		if !ok {
			return codec{}, false
		}
		c.name, c.clock = st.name, st.clock
	}
	return c, true
}

// direction mirrors an offered stream direction (RFC 3264 §6.1).
func direction(m *sdp.MediaDescription) string {
	for _, a := range m.Attributes {
		switch a.Key {
		case "sendonly":
			return "recvonly"
		case "recvonly":
			return "sendonly"
		case "inactive":
			return "inactive"
		}
	}
	return "sendrecv"
}

// Answer answers offer (RFC 3264 §6): one m= line per offered stream, in order;
// for each, the offered codecs this UAS takes, in the offerer's order and with
// the offerer's payload types; a stream with none is refused with port 0. addr
// is the connection address to announce; version is the o= session version,
// which the caller raises on every change.
func (c Capabilities) Answer(offer []byte, addr string, sessionID, version uint64) ([]byte, error) {
	var o sdp.SessionDescription
	if err := o.Unmarshal(offer); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSDP, err)
	}
	if len(o.MediaDescriptions) == 0 {
		return nil, fmt.Errorf("%w: the offer has no m= line", ErrMalformedSDP)
	}
	a := c.session(addr, sessionID, version)
	usable := false
	for i, m := range o.MediaDescriptions {
		local := c.media[m.MediaName.Media]
		md := &sdp.MediaDescription{MediaName: sdp.MediaName{Media: m.MediaName.Media, Protos: m.MediaName.Protos}}
		var taken []codec
		for _, f := range m.MediaName.Formats {
			oc, ok := formatCodec(&o, m, f)
			if !ok || m.MediaName.Port.Value == 0 {
				continue
			}
			for _, lc := range local {
				if lc.matches(oc) {
					taken = append(taken, oc)
					break
				}
			}
		}
		// telephone-event alone is no stream: it needs a voice codec beside it.
		voice := false
		for _, t := range taken {
			voice = voice || !strings.EqualFold(t.name, telephoneEvent.name)
		}
		if !voice {
			md.MediaName.Port = sdp.RangedPort{Value: 0}
			md.MediaName.Formats = m.MediaName.Formats[:min(1, len(m.MediaName.Formats))]
			a.MediaDescriptions = append(a.MediaDescriptions, md)
			continue
		}
		usable = true
		md.MediaName.Port = sdp.RangedPort{Value: 40000 + 2*i}
		for _, t := range taken {
			addCodec(md, t)
		}
		md.Attributes = append(md.Attributes, sdp.NewPropertyAttribute(direction(m)))
		a.MediaDescriptions = append(a.MediaDescriptions, md)
	}
	if !usable {
		return nil, ErrNoCommonMedia
	}
	return a.Marshal()
}

// Offer is this UAS's own offer (late offer: an INVITE without SDP gets it in
// the 200), one stream per media type of the profile. It returns nil when the
// profile has no media.
func (c Capabilities) Offer(addr string, sessionID, version uint64) ([]byte, error) {
	if len(c.order) == 0 {
		return nil, nil
	}
	s := c.session(addr, sessionID, version)
	for i, kind := range c.order {
		md := &sdp.MediaDescription{MediaName: sdp.MediaName{
			Media: kind, Port: sdp.RangedPort{Value: 40000 + 2*i}, Protos: []string{"RTP", "AVP"},
		}}
		for _, cd := range c.media[kind] {
			addCodec(md, cd)
		}
		md.Attributes = append(md.Attributes, sdp.NewPropertyAttribute("sendrecv"))
		s.MediaDescriptions = append(s.MediaDescriptions, md)
	}
	return s.Marshal()
}

func (c Capabilities) session(addr string, sessionID, version uint64) *sdp.SessionDescription {
	addrType := "IP4"
	if strings.Contains(addr, ":") {
		addrType = "IP6"
	}
	return &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "siphon", SessionID: sessionID, SessionVersion: version,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: addr,
		},
		SessionName: "siphon",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: addr},
		},
		TimeDescriptions: []sdp.TimeDescription{{Timing: sdp.Timing{}}},
	}
}

func addCodec(md *sdp.MediaDescription, c codec) {
	pt := strconv.Itoa(int(c.pt))
	md.MediaName.Formats = append(md.MediaName.Formats, pt)
	rtpmap := pt + " " + c.name + "/" + strconv.Itoa(int(c.clock))
	if c.channels != "" {
		rtpmap += "/" + c.channels
	}
	md.Attributes = append(md.Attributes, sdp.NewAttribute("rtpmap", rtpmap))
	if c.fmtp != "" {
		md.Attributes = append(md.Attributes, sdp.NewAttribute("fmtp", pt+" "+c.fmtp))
	}
}
