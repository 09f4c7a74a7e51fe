package hub

import (
	"encoding/json"
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
