package events

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/siphon-lab/siphon/pkg/store"
)

const (
	messageSummary = "message-summary"
	summaryType    = "application/simple-message-summary"
)

// summaryBody is RFC 3842's message summary of the account: what was last
// published for it (a voicemail system's PUBLISH) or, without that, no
// messages waiting.
func summaryBody(ctx context.Context, e *Events, s *store.Subscription) ([]byte, string, error) {
	p, err := e.published(ctx, messageSummary, s.Resource)
	if err != nil {
		return nil, "", fmt.Errorf("events: message summary of %s: %w", s.Resource, err)
	}
	if p != nil {
		return []byte(p.Body), summaryType, nil
	}
	return []byte("Messages-Waiting: no\r\nMessage-Account: " + s.Resource + "\r\nVoice-Message: 0/0 (0/0)\r\n"), summaryType, nil
}

// checkSummary takes a body that starts with RFC 3842 §5.2's
// msg-status-line, "Messages-Waiting: yes" or "no".
func checkSummary(body []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "Messages-Waiting") {
			return errors.New(`the first line is not "Messages-Waiting: yes|no" (RFC 3842 §5.2)`)
		}
		if v := strings.ToLower(strings.TrimSpace(value)); v != "yes" && v != "no" {
			return fmt.Errorf("Messages-Waiting: %q, want yes or no", v)
		}
		return nil
	}
	return errors.New("empty message summary")
}
