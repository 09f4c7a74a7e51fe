package hub

import (
	"context"
	"errors"
	"fmt"
)

// Limits on the other fields of a message.
const (
	MaxEventLen = 64
	MaxKeyLen   = 128
)

var (
	ErrBadMessage = errors.New("hub: bad message")
	ErrBadEvent   = errors.New("hub: bad event type")
)

// ValidateEvent returns an error wrapping ErrBadEvent unless e is a valid event type: at most
// 64 bytes of printable ASCII without space. An event type is one SSE field value and a
// JavaScript event name, so CR, LF and NUL in particular could inject fields or events.
func ValidateEvent(e string) error {
	if len(e) > MaxEventLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadEvent, MaxEventLen)
	}
	for i := 0; i < len(e); i++ {
		if e[i] <= ' ' || e[i] > '~' {
			return fmt.Errorf("%w: byte %q not allowed (printable ASCII without space)", ErrBadEvent, e[i])
		}
	}
	return nil
}

// Validate checks a message before it is appended. The error wraps ErrBadTopic, ErrBadEvent,
// ErrBadMessage or ErrTooLarge.
func (h *Hub) Validate(m *Message) error {
	if len(m.Topics) == 0 {
		return fmt.Errorf("%w: no topic given", ErrBadTopic)
	}
	if len(m.Topics) > h.cfg.MaxTopics {
		return fmt.Errorf("%w: %d topics, at most %d per message", ErrBadTopic, len(m.Topics), h.cfg.MaxTopics)
	}
	for _, t := range m.Topics {
		if err := ValidateTopic(t); err != nil {
			return err
		}
	}
	if err := ValidateEvent(m.Event); err != nil {
		return err
	}
	if len(m.Data) > h.cfg.MaxData {
		return fmt.Errorf("%w: data is %d bytes, at most %d", ErrTooLarge, len(m.Data), h.cfg.MaxData)
	}
	if len(m.IdempotencyKey) > MaxKeyLen {
		return fmt.Errorf("%w: idempotency key longer than %d bytes", ErrBadMessage, MaxKeyLen)
	}
	return nil
}

// Publish validates msgs, appends them to the log and sets their Seq, ID and Time. It returns
// once the log has acknowledged them; delivery to subscribers follows through the tail. dup[i]
// is true when msgs[i] repeated an idempotency key: it then carries the first publish's id.
func (h *Hub) Publish(ctx context.Context, msgs []*Message) (dup []bool, err error) {
	for i, m := range msgs {
		if err := h.Validate(m); err != nil {
			if len(msgs) > 1 {
				return nil, fmt.Errorf("message %d: %w", i, err)
			}
			return nil, err
		}
		m.Topics = dedupe(m.Topics)
	}
	dup, err = h.log.Append(ctx, msgs)
	if err != nil {
		return nil, err
	}
	h.stats.Published.Add(uint64(len(msgs)))
	return dup, nil
}

func dedupe(topics []string) []string {
	for i := 1; i < len(topics); i++ {
		for j := 0; j < i; j++ {
			if topics[i] == topics[j] {
				out := make([]string, 0, len(topics))
				seen := make(map[string]bool, len(topics))
				for _, t := range topics {
					if !seen[t] {
						seen[t] = true
						out = append(out, t)
					}
				}
				return out
			}
		}
	}
	return topics
}

// Page is one page of history.
type Page struct {
	Messages []*Message
	Next     string // the id to pass as since for the next page
	Gap      *Gap   // set when since could not be honoured exactly
}

// History returns up to limit messages matching f after the id since (from the oldest kept
// message when since is empty), oldest first.
func (h *Hub) History(ctx context.Context, f *Filter, since string, limit int) (Page, error) {
	var after uint64
	var gap *Gap
	if since != "" {
		seq, g, err := h.resumePoint(ctx, since, f)
		if err != nil {
			return Page{}, err
		}
		gap = g
		if seq != nil {
			after = *seq
		}
	}
	upto, err := h.log.Last(ctx)
	if err != nil {
		return Page{}, err
	}
	epoch := h.log.Epoch() // the log's, which upto belongs to; the hub's may lag behind it
	if e, _, _ := ParseID(since); gap == nil && since != "" && e != epoch {
		gap = epochGap(since)
	}
	if gap != nil && gap.Reason != GapTrimmed {
		// Nothing to continue from: report the gap and the current position.
		return Page{Messages: []*Message{}, Next: FormatID(epoch, upto), Gap: gap}, nil
	}
	h.stats.LogReads.Add(1)
	msgs, err := h.log.Read(ctx, after, upto, f, limit)
	if err != nil {
		return Page{}, err
	}
	next := FormatID(epoch, upto)
	if len(msgs) == limit && limit > 0 {
		next = msgs[len(msgs)-1].ID
	}
	if msgs == nil {
		msgs = []*Message{}
	}
	return Page{Messages: msgs, Next: next, Gap: gap}, nil
}
