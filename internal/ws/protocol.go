package ws

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/herald-push/herald/internal/hub"
)

// Close codes. The 1xxx ones are RFC 6455's; the 4xxx ones are ours, documented in docs/api.md.
// A client reconnects (resuming with since) after 1001, 1011, 1012 and 4008; it needs new
// credentials after 4001 and 4003; it should slow down after 4029.
const (
	CloseGoingAway     = 1001 // the server is going away and this connection has no subscription to resume
	CloseProtocol      = 1002 // a frame broke RFC 6455 (bad header, opcode, close frame...)
	CloseInvalidData   = 1007 // a text frame was not valid UTF-8, or compressed data was invalid
	ClosePolicy        = 1008 // too many bad requests in a row
	CloseTooLarge      = 1009 // a message over the read limit, also after decompression
	CloseInternal      = 1011 // the log failed; reconnect and resume
	CloseRestart       = 1012 // the server is restarting or its log was reset; reconnect and resume
	CloseTryAgain      = 1013 // too many connections for now; reconnect later
	CloseUnauthorized  = 4001 // missing, invalid or expired credentials
	CloseForbidden     = 4003 // the credentials may not use this endpoint
	CloseSlowConsumer  = 4008 // the client did not read fast enough; reconnect and resume
	CloseRateLimited   = 4029 // the client sent frames faster than allowed
	maxRefLen          = 128
	messagePrefixBytes = `{"type":"message",`
)

// request is a client-to-server frame. Fields not used by an op are ignored.
type request struct {
	Op             string          `json:"op"`
	Ref            json.RawMessage `json:"ref"`
	Topics         []string        `json:"topics"`
	Topic          string          `json:"topic"`
	Since          string          `json:"since"`
	Data           json.RawMessage `json:"data"`
	Event          string          `json:"event"`
	Retain         bool            `json:"retain"`
	IdempotencyKey string          `json:"idempotencyKey"`
}

// parse decodes one text frame. The ref, when present, must be a JSON string or number so that
// echoing it back can never inject anything.
func parse(b []byte) (request, error) {
	var req request
	if err := json.Unmarshal(b, &req); err != nil {
		return req, fmt.Errorf("%w: invalid JSON: %v", ErrBadRequest, err)
	}
	if len(req.Ref) > 0 {
		if len(req.Ref) > maxRefLen {
			return request{}, fmt.Errorf("%w: ref longer than %d bytes", ErrBadRequest, maxRefLen)
		}
		if c := req.Ref[0]; c != '"' && c != '-' && (c < '0' || c > '9') && string(req.Ref) != "null" {
			return request{Op: req.Op}, fmt.Errorf("%w: ref must be a string or a number", ErrBadRequest)
		}
		if string(req.Ref) == "null" {
			req.Ref = nil
		}
	}
	return req, nil
}

// message turns a publish op into a hub message.
func (r *request) message() (*hub.Message, error) {
	m := &hub.Message{Event: r.Event, Retain: r.Retain, IdempotencyKey: r.IdempotencyKey}
	if r.Topic != "" {
		m.Topics = append(m.Topics, r.Topic)
	}
	m.Topics = append(m.Topics, r.Topics...)
	data, err := hub.DataText(r.Data)
	m.Data = data
	return m, err
}

// encoded returns the message frame's JSON: {"type":"message"} merged into the message's
// shared JSON form. It is computed once per message, inside its cached frame (frame.go).
func encoded(m *hub.Message) []byte {
	return append([]byte(messagePrefixBytes), m.AppendJSON(nil)[1:]...)
}

// Server-to-client frames other than messages. They are small and per connection.

func appendRef(b []byte, ref json.RawMessage) []byte {
	if len(ref) == 0 {
		return b
	}
	b = append(b, `,"ref":`...)
	return append(b, ref...)
}

func ackFrame(ref json.RawMessage, id string) []byte {
	b := appendRef([]byte(`{"type":"ack"`), ref)
	if id != "" {
		b = append(b, `,"id":`...)
		b = strconv.AppendQuote(b, id)
	}
	return append(b, '}')
}

func pongFrame(ref json.RawMessage) []byte {
	return append(appendRef([]byte(`{"type":"pong"`), ref), '}')
}

func subscribedFrame(ref json.RawMessage, position string) []byte {
	b := appendRef([]byte(`{"type":"subscribed"`), ref)
	b = append(b, `,"position":`...)
	b = strconv.AppendQuote(b, position)
	return append(b, '}')
}

func errorFrame(ref json.RawMessage, code, msg string) []byte {
	b := appendRef([]byte(`{"type":"error"`), ref)
	b = append(b, `,"code":`...)
	b = strconv.AppendQuote(b, code)
	b = append(b, `,"message":`...)
	q, _ := json.Marshal(msg)
	b = append(b, q...)
	return append(b, '}')
}

func gapFrame(ref json.RawMessage, g *hub.Gap) []byte {
	b := appendRef([]byte(`{"type":"gap"`), ref)
	body, _ := json.Marshal(g)
	b = append(b, ',')
	return append(b, body[1:]...)
}
