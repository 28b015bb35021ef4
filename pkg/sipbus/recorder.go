package sipbus

import (
	"context"
	"fmt"
	"sync"

	"github.com/emiago/sipgo/sip"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
)

// Recorder captures what a handler responds, for handler tests without a bus
// (like sipgo's siptest and coredns's dnstest recorders). Responses sent from
// other goroutines (a ringing call answering later) are safe to wait for with Await.
type Recorder struct {
	mu        sync.Mutex
	Responses []*sip.Response
	// Ends counts the end markers (Request.End) sent.
	Ends    int
	arrived chan struct{}
}

// Respond implements responder: it parses back what would go on the bus.
func (r *Recorder) Respond(data []byte, _ ...micro.RespondOpt) error {
	if len(data) == 0 {
		r.mu.Lock()
		r.Ends++
		r.mu.Unlock()
		return nil
	}
	// data is a pooled buffer, reused once Respond returns: keep a copy.
	msg, err := sip.ParseMessage(append([]byte(nil), data...))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.Responses = append(r.Responses, msg.(*sip.Response))
	if r.arrived != nil {
		close(r.arrived)
		r.arrived = nil
	}
	r.mu.Unlock()
	return nil
}

// Last is the last response, nil when there was none.
func (r *Recorder) Last() *sip.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.Responses) == 0 {
		return nil
	}
	return r.Responses[len(r.Responses)-1]
}

// Codes are the status codes recorded so far, in order.
func (r *Recorder) Codes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, len(r.Responses))
	for i, res := range r.Responses {
		out[i] = res.StatusCode
	}
	return out
}

// Await waits until n responses are recorded, or ctx ends, and returns the nth.
func (r *Recorder) Await(ctx context.Context, n int) (*sip.Response, error) {
	for {
		r.mu.Lock()
		if len(r.Responses) >= n {
			res := r.Responses[n-1]
			r.mu.Unlock()
			return res, nil
		}
		if r.arrived == nil {
			r.arrived = make(chan struct{})
		}
		arrived := r.arrived
		r.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return nil, fmt.Errorf("recorder: %d responses (%v), want %d: %w", len(r.Codes()), r.Codes(), n, ctx.Err())
		}
	}
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
