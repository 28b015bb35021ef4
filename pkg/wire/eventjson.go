package wire

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/siphon-lab/siphon/pkg/store"
)

// AppendJSON appends e as encoding/json would marshal it (same keys, same
// omitempty, same escaping of strings and times). It is written by hand because
// the registrar publishes one per REGISTER: json.Marshal's reflection and its
// re-compaction of time.Time's MarshalJSON were 6 % of the CPU of an embedded
// registrar at 10,000 REGISTER/s (docs/benchmarks.md). TestBindingEventJSON
// holds it to json.Marshal.
func (e BindingEvent) AppendJSON(b []byte) []byte {
	b = append(b, `{"event":`...)
	b = appendString(b, e.Event)
	b = append(b, `,"binding":`...)
	b = appendBinding(b, &e.Binding)
	b = append(b, `,"at":`...)
	b = appendTime(b, e.At)
	return append(b, '}')
}

func appendBinding(b []byte, x *store.Binding) []byte {
	b = append(b, `{"aor":`...)
	b = appendString(b, x.AOR)
	b = append(b, `,"contact":`...)
	b = appendString(b, x.Contact)
	b = append(b, `,"q":`...)
	b = appendFloat(b, x.Q)
	if x.QSet {
		b = append(b, `,"q_set":true`...)
	}
	b = append(b, `,"expires":`...)
	b = appendTime(b, x.Expires)
	b = append(b, `,"call_id":`...)
	b = appendString(b, x.CallID)
	b = append(b, `,"cseq":`...)
	b = strconv.AppendUint(b, uint64(x.CSeq), 10)
	if len(x.Path) > 0 {
		b = append(b, `,"path":[`...)
		for i, p := range x.Path {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p)
		}
		b = append(b, ']')
	}
	if x.Instance != "" {
		b = appendString(append(b, `,"instance":`...), x.Instance)
	}
	if x.RegID != 0 {
		b = strconv.AppendInt(append(b, `,"reg_id":`...), int64(x.RegID), 10)
	}
	for _, f := range [...]struct{ key, v string }{
		{`,"edge":`, x.Edge}, {`,"transport":`, x.Transport}, {`,"source":`, x.Source},
		{`,"flow":`, x.Flow}, {`,"user_agent":`, x.UserAgent},
	} {
		if f.v != "" {
			b = appendString(append(b, f.key...), f.v)
		}
	}
	b = append(b, `,"updated":`...)
	b = appendTime(b, x.Updated)
	return append(b, '}')
}

// appendTime is time.Time's MarshalJSON; a year it refuses falls back to it.
func appendTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return appendMarshal(b, t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat is encoding/json's float64 for the range a q-value has; others
// (exponent form, NaN) go through json.Marshal.
func appendFloat(b []byte, f float64) []byte {
	if a := math.Abs(f); math.IsNaN(f) || math.IsInf(f, 0) || (a != 0 && (a < 1e-6 || a >= 1e21)) {
		return appendMarshal(b, f)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

func appendMarshal(b []byte, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, data...)
}

const hex = "0123456789abcdef"

// appendString is encoding/json's string encoding, HTML escaping included:
// invalid UTF-8 becomes U+FFFD, and U+2028/U+2029 are escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
