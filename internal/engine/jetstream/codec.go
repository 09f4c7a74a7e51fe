package jetstream

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-push/herald/internal/hub"
)

// Headers of a stored message. The body is the message's Data, untouched.
const (
	hdrTopics = "Herald-Topics" // comma-separated, only on the multi-topic subject
	hdrEvent  = "Herald-Event"
	hdrRetain = "Herald-Retain"
	hdrTime   = "Herald-Time" // unix nanoseconds at Append: Read returns what Append set
	hdrSeq    = "Herald-Seq"  // on retained copies: the message's Seq in the log
)

// encode returns the NATS message that stores m in the log at now.
func (l *Log) encode(m *hub.Message, now time.Time) (*nats.Msg, error) {
	if len(m.Topics) == 0 {
		return nil, fmt.Errorf("%w: message without topic", hub.ErrBadTopic)
	}
	for _, t := range m.Topics {
		if err := hub.ValidateTopic(t); err != nil {
			return nil, err
		}
	}
	// A header value cannot carry line breaks: refuse rather than let an event name inject
	// headers (the hub does not restrict event names yet).
	if strings.ContainsAny(m.Event, "\r\n\x00") {
		return nil, fmt.Errorf("jetstream: event %.40q contains a line break or NUL", m.Event)
	}
	msg := &nats.Msg{Data: m.Data, Header: make(nats.Header, 4)}
	if len(m.Topics) == 1 {
		msg.Subject = topicSubject(l.topicBase, m.Topics[0])
	} else {
		msg.Subject = l.multiSubject
		msg.Header.Set(hdrTopics, strings.Join(m.Topics, ","))
	}
	if m.Event != "" {
		msg.Header.Set(hdrEvent, m.Event)
	}
	if m.Retain {
		msg.Header.Set(hdrRetain, "1")
	}
	msg.Header.Set(hdrTime, strconv.FormatInt(now.UnixNano(), 10))
	if m.IdempotencyKey != "" {
		msg.Header.Set(nats.MsgIdHdr, m.IdempotencyKey)
	}
	return msg, nil
}

// decode rebuilds a message stored under base at seq (stamped by the server at ts). For the
// log's own subjects base is the topic base; for retained copies it is the retain base and
// Seq comes from the header.
func (l *Log) decode(base, subject string, h nats.Header, data []byte, seq uint64, ts time.Time) (*hub.Message, error) {
	m := &hub.Message{Seq: seq, Data: data, Time: ts}
	if ts := h.Get(hdrTopics); ts != "" {
		m.Topics = strings.Split(ts, ",")
	} else {
		t, err := subjectTopic(base, subject)
		if err != nil {
			return nil, err
		}
		m.Topics = []string{t}
	}
	m.Event = h.Get(hdrEvent)
	m.Retain = h.Get(hdrRetain) == "1"
	if v := h.Get(hdrTime); v != "" {
		if ns, err := strconv.ParseInt(v, 10, 64); err == nil {
			m.Time = time.Unix(0, ns)
		}
	}
	if v := h.Get(hdrSeq); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("jetstream: bad %s header %q", hdrSeq, v)
		}
		m.Seq = s
	}
	m.ID = hub.FormatID(l.Epoch(), m.Seq)
	return m, nil
}
