package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/herald-push/herald/internal/hub"
)

// publishRequest is the JSON form of one message.
type publishRequest struct {
	Topic          string          `json:"topic"`
	Topics         []string        `json:"topics"`
	Data           json.RawMessage `json:"data"`
	Event          string          `json:"event"`
	Retain         bool            `json:"retain"`
	IdempotencyKey string          `json:"idempotencyKey"`
}

func (p *publishRequest) message() (*hub.Message, error) {
	m := &hub.Message{Event: p.Event, Retain: p.Retain, IdempotencyKey: p.IdempotencyKey}
	if p.Topic != "" {
		m.Topics = append(m.Topics, p.Topic)
	}
	m.Topics = append(m.Topics, p.Topics...)
	data, err := hub.DataText(p.Data)
	if err != nil {
		return nil, err
	}
	m.Data = data
	return m, nil
}

// readMessages parses a publish request body: form fields, one JSON object, a JSON array or
// NDJSON. batch reports whether the client sent a list (and so gets a list of ids back).
func readMessages(r *http.Request) (msgs []*hub.Message, batch bool, err error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded", "multipart/form-data", "":
		// ParseForm first: ParseMultipartForm drops its error (a body over the limit) when the
		// body is not multipart, and the request would look like one without a topic.
		if err := r.ParseForm(); err != nil {
			return nil, false, formError(err)
		}
		if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return nil, false, formError(err)
		}
		f := r.PostForm
		m := &hub.Message{
			Topics:         f["topic"],
			Event:          f.Get("event"),
			Data:           []byte(f.Get("data")),
			IdempotencyKey: f.Get("idempotencyKey"),
		}
		if v := f.Get("retain"); v != "" {
			if m.Retain, err = parseBool(v); err != nil {
				return nil, false, fmt.Errorf("%w: retain: %v", ErrBadRequest, err)
			}
		}
		return []*hub.Message{m}, false, nil
	case "application/json":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, false, formError(err)
		}
		body = bytes.TrimSpace(body)
		if len(body) > 0 && body[0] == '[' {
			var reqs []publishRequest
			if err := strictUnmarshal(body, &reqs); err != nil {
				return nil, true, err
			}
			msgs, err = toMessages(reqs)
			return msgs, true, err
		}
		var req publishRequest
		if err := strictUnmarshal(body, &req); err != nil {
			return nil, false, err
		}
		msgs, err = toMessages([]publishRequest{req})
		return msgs, false, err
	case "application/x-ndjson", "application/jsonl":
		var reqs []publishRequest
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var req publishRequest
			if err := strictUnmarshal(line, &req); err != nil {
				return nil, true, fmt.Errorf("line %d: %w", len(reqs)+1, err)
			}
			reqs = append(reqs, req)
		}
		if err := sc.Err(); err != nil {
			return nil, true, formError(err)
		}
		msgs, err = toMessages(reqs)
		return msgs, true, err
	}
	return nil, false, fmt.Errorf("%w: unsupported Content-Type %q (use form fields, application/json or application/x-ndjson)", ErrBadRequest, ct)
}

func formError(err error) error {
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) || errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%w: %v", ErrBodyTooLarge, err)
	}
	return fmt.Errorf("%w: %v", ErrBadRequest, err)
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return fmt.Errorf("%w: %v", ErrBodyTooLarge, err)
		}
		return fmt.Errorf("%w: invalid JSON: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: invalid JSON: trailing data", ErrBadRequest)
	}
	return nil
}

func toMessages(reqs []publishRequest) ([]*hub.Message, error) {
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%w: no message", ErrBadRequest)
	}
	msgs := make([]*hub.Message, len(reqs))
	for i, req := range reqs {
		m, err := req.message()
		if err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "yes":
		return true, nil
	case "off", "no":
		return false, nil
	}
	return strconv.ParseBool(v)
}

type publishResponse struct {
	ID        string   `json:"id,omitempty"`
	IDs       []string `json:"ids,omitempty"`
	Duplicate bool     `json:"duplicate,omitempty"`
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.writeError(w, r, ErrDraining)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	msgs, batch, err := readMessages(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(msgs) > s.cfg.MaxBatch {
		s.writeError(w, r, fmt.Errorf("%w: %d messages in one request, at most %d", ErrBodyTooLarge, len(msgs), s.cfg.MaxBatch))
		return
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		for i, m := range msgs {
			if m.IdempotencyKey == "" {
				m.IdempotencyKey = key
				if batch {
					m.IdempotencyKey = key + "/" + strconv.Itoa(i)
				}
			}
		}
	}
	if err := s.allowPublish(r, msgs); err != nil {
		s.writeError(w, r, err)
		return
	}
	dup, err := s.cfg.Hub.Publish(r.Context(), msgs)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !batch {
		writeJSON(w, http.StatusOK, publishResponse{ID: msgs[0].ID, Duplicate: dup[0]})
		return
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	writeJSON(w, http.StatusOK, publishResponse{IDs: ids})
}
