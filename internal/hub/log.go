package hub

import (
	"context"
	"errors"
	"time"
)

// Log orders messages, keeps their history and retained values, and feeds this node every new
// message. It is the seam between the hub and an engine (embedded JetStream, external NATS,
// Redis, memory); every engine must pass the conformance suite in package hubtest.
//
// Sequence numbers are positive, strictly increasing and never reused within one Epoch. A Log
// whose data was wiped or recreated must report a new Epoch, so that old ids are detected.
type Log interface {
	// Epoch names this log's lifetime. It is part of every id.
	Epoch() string

	// Last returns the sequence of the newest message, or 0 when the log is empty.
	Last(ctx context.Context) (uint64, error)

	// Append stores msgs in order and sets each one's Seq, ID (FormatID(Epoch(), Seq)) and Time
	// before any other goroutine can see them; messages are immutable from then on, and every
	// message that Read, Retained and Tail return has its ID set. It returns only once they
	// are durable by the engine's policy. A message whose IdempotencyKey was seen within the
	// dedup window is not stored again: it gets the first message's Seq, and dup[i] is true.
	// On error nothing is acknowledged (some messages may have been stored).
	Append(ctx context.Context, msgs []*Message) (dup []bool, err error)

	// Read returns up to limit messages with after < Seq <= upto that match f, oldest first.
	Read(ctx context.Context, after, upto uint64, f *Filter, limit int) ([]*Message, error)

	// Tail calls deliver, from one goroutine and in order, for every message with Seq > after,
	// including messages appended by other nodes, until ctx ends or the log fails.
	Tail(ctx context.Context, after uint64, deliver func(*Message)) error

	// Retained returns the retained message of every topic matching f.
	Retained(ctx context.Context, f *Filter) ([]*Message, error)

	// Trimmed reports whether retention may have removed a message that matches f and has
	// Seq > after. It may answer true when unsure (a spurious gap notice is safe; a silent loss
	// is not), never false when a message was removed.
	Trimmed(ctx context.Context, after uint64, f *Filter) (bool, error)
}

// Errors a Log may wrap; the server maps them to status codes.
var (
	ErrUnavailable = errors.New("hub: log unavailable") // retry later: 503
	ErrFull        = errors.New("hub: log full")        // storage exhausted: 507
	ErrTooLarge    = errors.New("hub: message too large")
)

// Retention says how much history a Log keeps. Zero values mean "no limit".
type Retention struct {
	PerTopic int // messages kept per topic
	MaxAge   time.Duration
	MaxBytes int64 // for the whole log
	MaxMsgs  int64 // for the whole log
}
