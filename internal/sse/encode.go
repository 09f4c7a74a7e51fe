// Package sse serves subscriptions as Server-Sent Events and parses such streams.
//
// The encoder writes what native EventSource parses: id, event and data fields, with the data
// split into one data line per line so that a publisher can never inject a field or an event.
package sse

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

// Wire formats, selected with the format query parameter.
const (
	FormatRaw      = "raw"      // data is the published data
	FormatEnvelope = "envelope" // data is the message's JSON form, with topic and id
)

var (
	rawSlot      = hub.EncodingSlot()
	envelopeSlot = hub.EncodingSlot()
)

// Encoded returns the message's frame in the given format, encoded once for all subscribers.
func Encoded(m *hub.Message, format string) []byte {
	if format == FormatEnvelope {
		return m.Encoded(envelopeSlot, encodeEnvelope)
	}
	return m.Encoded(rawSlot, encodeRaw)
}

func encodeRaw(m *hub.Message) []byte {
	return AppendEvent(nil, m.ID, m.Event, m.Data)
}

func encodeEnvelope(m *hub.Message) []byte {
	return AppendEvent(nil, m.ID, m.Event, m.AppendJSON(nil))
}

// AppendEvent appends one event. id and event must not contain CR, LF or NUL (the hub
// guarantees it for ids and event types); data may contain anything: every CR, LF or CRLF
// starts a new data line, which EventSource joins back with LF.
func AppendEvent(b []byte, id, event string, data []byte) []byte {
	if id != "" {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	if event != "" {
		b = append(b, "event: "...)
		b = append(b, event...)
		b = append(b, '\n')
	}
	for {
		b = append(b, "data: "...)
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			b = append(b, data...)
			break
		}
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(b, '\n', '\n')
}

// AppendID appends an id with no data: EventSource records it as the last event id without
// dispatching an event, so a client resumes from there.
func AppendID(b []byte, id string) []byte {
	b = append(b, "id: "...)
	b = append(b, id...)
	return append(b, '\n', '\n')
}

// AppendRetry appends a reconnection delay.
func AppendRetry(b []byte, d time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, d.Milliseconds(), 10)
	return append(b, '\n', '\n')
}

// AppendComment appends a comment line, which EventSource ignores: heartbeats and close reasons.
func AppendComment(b []byte, text string) []byte {
	b = append(b, ": "...)
	b = append(b, bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, []byte(text))...)
	return append(b, '\n', '\n')
}

// GapEvent is the event type of a gap notice.
const GapEvent = "herald.gap"

// AppendGap appends a gap notice: event herald.gap with the gap as JSON data, and no id.
func AppendGap(b []byte, g *hub.Gap) []byte {
	data, _ := json.Marshal(g)
	return AppendEvent(b, "", GapEvent, data)
}
