package hub

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// MaxDataLen is the default limit on a message's data, in bytes.
const MaxDataLen = 64 << 10

// Message is one published event. Once a Log has assigned its Seq it is immutable and shared by
// every subscriber that receives it: transports cache their encoding of it with Encoded.
type Message struct {
	Seq    uint64    // position in the log; 0 until appended
	ID     string    // the client-facing id, FormatID(epoch, Seq); set by the Log
	Topics []string  // at least one; a subscriber matching several receives the message once
	Event  string    // optional event type, e.g. "order.updated"
	Data   []byte    // the payload, delivered as text
	Retain bool      // becomes the current state of each of its topics
	Time   time.Time // when the log accepted it

	// IdempotencyKey makes a retried publish return the first one's id instead of appending
	// again. It is kept by the log for its dedup window and never sent to subscribers.
	IdempotencyKey string

	enc [maxEncodings]atomic.Pointer[[]byte]
}

const maxEncodings = 8

var encodings atomic.Int32

// EncodingSlot reserves a slot for one wire format's cached encoding. Call it once per format,
// at package init.
func EncodingSlot() int {
	n := int(encodings.Add(1)) - 1
	if n >= maxEncodings {
		panic("hub: too many encoding slots")
	}
	return n
}

// Encoded returns the message encoded by encode, computing it at most a few times however many
// subscribers ask (concurrent first calls may both encode; one result wins and both are equal).
// This is what makes a fan-out to N subscribers cost one encoding, not N.
func (m *Message) Encoded(slot int, encode func(*Message) []byte) []byte {
	if p := m.enc[slot].Load(); p != nil {
		return *p
	}
	b := encode(m)
	m.enc[slot].CompareAndSwap(nil, &b)
	return *m.enc[slot].Load()
}

// ErrBadID is returned for an id that this server never produced.
var ErrBadID = errors.New("hub: bad message id")

// FormatID makes the client-facing id of position seq in the log of the given epoch.
// Clients treat ids as opaque strings.
func FormatID(epoch string, seq uint64) string {
	return epoch + "-" + strconv.FormatUint(seq, 10)
}

// ParseID splits an id made by FormatID.
func ParseID(id string) (epoch string, seq uint64, err error) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 || len(id) > 128 {
		return "", 0, fmt.Errorf("%w: %.40q", ErrBadID, id)
	}
	seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %.40q", ErrBadID, id)
	}
	return id[:i], seq, nil
}
