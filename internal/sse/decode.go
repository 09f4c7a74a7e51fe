package sse

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"time"
)

// Event is one dispatched event, as EventSource would see it.
type Event struct {
	ID    string // the last event id after this event (EventSource's lastEventId)
	Type  string // "message" when the stream named none
	Data  string
	Retry time.Duration // the last retry field seen, or 0
}

// Reader parses an event stream as the HTML standard's EventSource does: comments skipped,
// data lines joined with LF, events with no data not dispatched (but their id recorded).
type Reader struct {
	r      *bufio.Reader
	lastID string // committed when an event is dispatched, as EventSource does
	idBuf  string // the id field seen so far; it becomes lastID at the blank line
	retry  time.Duration
	// OnComment, if set, is called with the text of every comment line.
	OnComment func(string)
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Retry returns the last reconnection delay the stream advised, including one sent in a frame
// with no data (as the server does when it shuts down), or 0.
func (d *Reader) Retry() time.Duration { return d.retry }

// LastID returns the last event id of a complete event (ended by a blank line), including
// events without data. An id line whose event was cut off does not count: resuming from it
// would skip that event.
func (d *Reader) LastID() string { return d.lastID }

// Next returns the next dispatched event.
func (d *Reader) Next() (Event, error) {
	var data bytes.Buffer
	var typ string
	hasData := false
	for {
		line, err := d.readLine()
		if err != nil {
			return Event{}, err
		}
		if len(line) == 0 {
			d.lastID = d.idBuf
			if !hasData {
				typ = ""
				continue
			}
			if typ == "" {
				typ = "message"
			}
			b := data.Bytes()
			return Event{ID: d.lastID, Type: typ, Data: string(b[:len(b)-1]), Retry: d.retry}, nil
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "":
			if d.OnComment != nil {
				d.OnComment(string(value))
			}
		case "data":
			data.Write(value)
			data.WriteByte('\n')
			hasData = true
		case "event":
			typ = string(value)
		case "id":
			if !bytes.ContainsRune(value, 0) {
				d.idBuf = string(value)
			}
		case "retry":
			if ms, err := strconv.Atoi(string(value)); err == nil {
				d.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// readLine returns one line without its CR, LF or CRLF ending.
func (d *Reader) readLine() ([]byte, error) {
	var line []byte
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			return nil, err
		}
		switch c {
		case '\n':
			return line, nil
		case '\r':
			if next, err := d.r.Peek(1); err == nil && next[0] == '\n' {
				d.r.ReadByte()
			}
			return line, nil
		}
		line = append(line, c)
	}
}
