// Package naive is the baseline Herald is measured against: a push server written the way
// the introductory blog posts write one. Every client gets a goroutine and a buffered channel,
// subscribers live in a map behind one mutex, and each message is JSON-encoded again for each
// client. When a client's channel is full the message is dropped, silently.
//
// It speaks the subset of Herald's API that the bench uses: POST /publish with a JSON array
// (or object) of {"topic","data"}, and GET /events?topic=... as Server-Sent Events. Do not use
// it for anything but measurements.
package naive

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
)

type message struct {
	Topic string `json:"topic"`
	Data  string `json:"data"`
}

type client struct {
	ch chan message
}

// Server is the naive push server.
type Server struct {
	mu      sync.Mutex
	clients map[string]map[*client]bool // topic -> clients
}

// New returns an empty server.
func New() *Server {
	return &Server{clients: make(map[string]map[*client]bool)}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/publish":
		s.publish(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/events":
		s.events(w, r)
	case r.URL.Path == "/readyz":
		io.WriteString(w, "ok")
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msgs []message
	if len(body) > 0 && body[0] == '[' {
		err = json.Unmarshal(body, &msgs)
	} else {
		msgs = make([]message, 1)
		err = json.Unmarshal(body, &msgs[0])
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, m := range msgs {
		s.mu.Lock()
		for c := range s.clients[m.Topic] {
			select {
			case c.ch <- m:
			default: // client too slow: drop
			}
		}
		s.mu.Unlock()
	}
	io.WriteString(w, `{"ok":true}`)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	topics := r.URL.Query()["topic"]
	c := &client{ch: make(chan message, 16)}
	s.mu.Lock()
	for _, t := range topics {
		if s.clients[t] == nil {
			s.clients[t] = make(map[*client]bool)
		}
		s.clients[t][c] = true
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		for _, t := range topics {
			delete(s.clients[t], c)
		}
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	for {
		select {
		case m := <-c.ch:
			b, _ := json.Marshal(m)
			fmt.Fprintf(w, "data: %s\n\n", b)
			flusher.Flush()
		case <-r.Context().Done():
			return
		}
	}
}
