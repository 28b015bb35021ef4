package sipbus

import (
	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
)

// Recorder captures what a handler responds, for handler tests without a bus
// (like sipgo's siptest and coredns's dnstest recorders).
type Recorder struct {
	Responses []*sip.Response
}

// Respond implements responder: it parses back what would go on the bus.
func (r *Recorder) Respond(data []byte, _ ...micro.RespondOpt) error {
	// data is a pooled buffer, reused once Respond returns: keep a copy.
	msg, err := sip.ParseMessage(append([]byte(nil), data...))
	if err != nil {
		return err
	}
	r.Responses = append(r.Responses, msg.(*sip.Response))
	return nil
}

// Last is the last response, nil when there was none.
func (r *Recorder) Last() *sip.Response {
	if len(r.Responses) == 0 {
		return nil
	}
	return r.Responses[len(r.Responses)-1]
}

// NewTestRequest wraps req as if it came from an edge over UDP from remote, and
// returns the recorder its responses go to.
func NewTestRequest(req *sip.Request, remote string) (*Request, *Recorder) {
	rec := &Recorder{}
	req.SetSource(remote)
	req.SetTransport("UDP")
	return &Request{
		Request: req, Edge: "edge-test", Transport: "udp", Remote: remote,
		reply: rec, role: "test",
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_responses"}, []string{"role", "method", "code"}),
	}, rec
}
