package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the message's public JSON form, the one every JSON transport and the
// history API share: {"id","topic","topics"?,"event"?,"data","time"}. "topics" appears only
// when the message went to more than one topic; data is always a string.
func (m *Message) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, m.ID)
	b = append(b, `,"topic":`...)
	b = strconv.AppendQuote(b, m.Topics[0])
	if len(m.Topics) > 1 {
		b = append(b, `,"topics":[`...)
		for i, t := range m.Topics {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, t)
		}
		b = append(b, ']')
	}
	if m.Event != "" {
		b = append(b, `,"event":`...)
		b = strconv.AppendQuote(b, m.Event)
	}
	b = append(b, `,"data":`...)
	b = appendJSONString(b, m.Data)
	if !m.Time.IsZero() {
		b = append(b, `,"time":"`...)
		b = m.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendJSONString quotes data as a JSON string. Topics and events are ASCII by construction,
// so strconv.AppendQuote is valid JSON for them; data needs the full JSON escaping.
func appendJSONString(b, data []byte) []byte {
	if utf8.Valid(data) && plain(data) {
		b = append(b, '"')
		b = append(b, data...)
		return append(b, '"')
	}
	q, _ := json.Marshal(string(data))
	return append(b, q...)
}

// plain reports whether data needs no escaping inside a JSON string (and none of the escaping
// encoding/json does for HTML safety, so that both paths produce the same bytes).
func plain(data []byte) bool {
	for _, c := range data {
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			return false
		}
	}
	return true
}

// DataText turns the JSON "data" field of a publish request (HTTP or WebSocket) into the text
// subscribers receive: a JSON string is taken as its content, any other JSON value as its
// compact text, and a missing or null field as no data. Errors wrap ErrBadMessage.
func DataText(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%w: data: %v", ErrBadMessage, err)
		}
		return []byte(s), nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, fmt.Errorf("%w: data: %v", ErrBadMessage, err)
	}
	return b.Bytes(), nil
}
