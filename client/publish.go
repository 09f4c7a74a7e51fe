package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// publishRequest is the JSON form of a message that POST /publish accepts. The server rejects
// unknown fields, so it carries exactly these.
type publishRequest struct {
	Topic          string   `json:"topic,omitempty"`
	Topics         []string `json:"topics,omitempty"`
	Data           string   `json:"data"`
	Event          string   `json:"event,omitempty"`
	Retain         bool     `json:"retain,omitempty"`
	IdempotencyKey string   `json:"idempotencyKey,omitempty"`
}

func (m *Message) request() (publishRequest, error) {
	if m.Topic == "" && len(m.Topics) == 0 {
		return publishRequest{}, errors.New("herald: message has no topic")
	}
	return publishRequest{
		Topic: m.Topic, Topics: m.Topics, Data: m.Data, Event: m.Event,
		Retain: m.Retain, IdempotencyKey: m.IdempotencyKey,
	}, nil
}

// Publish publishes m and returns the id the server gave it. A repeated idempotency key
// returns the first publish's id.
func (c *Client) Publish(ctx context.Context, m Message) (string, error) {
	req, err := m.request()
	if err != nil {
		return "", err
	}
	if req.IdempotencyKey == "" && c.opts.Retries > 0 {
		req.IdempotencyKey = newKey()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	var resp struct{ ID string }
	if err := c.postJSON(ctx, "/publish", body, nil, &resp); err != nil {
		return "", err
	}
	return resp.ID, nil
}

// PublishBatch publishes msgs in one request, in order, and returns their ids. The server
// accepts all of them or none.
func (c *Client) PublishBatch(ctx context.Context, msgs []Message) ([]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	reqs := make([]publishRequest, len(msgs))
	for i := range msgs {
		r, err := msgs[i].request()
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		reqs[i] = r
	}
	body, err := json.Marshal(reqs)
	if err != nil {
		return nil, err
	}
	// The server derives "<key>/<index>" for every message that has no key of its own.
	var header http.Header
	if c.opts.Retries > 0 {
		header = http.Header{"Idempotency-Key": {newKey()}}
	}
	var resp struct{ IDs []string }
	if err := c.postJSON(ctx, "/publish", body, header, &resp); err != nil {
		return nil, err
	}
	if len(resp.IDs) != len(msgs) {
		return nil, fmt.Errorf("herald: %d ids for %d messages", len(resp.IDs), len(msgs))
	}
	return resp.IDs, nil
}
