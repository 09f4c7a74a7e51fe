package server

import (
	"fmt"
	"net/http"

	"github.com/herald-push/herald/internal/hub"
)

// handlePresence answers GET /presence?topic=T with how many subscribers T has across the
// cluster and who they are: {"topic", "subscribers", "identities", "nodes"}. Whoever may
// subscribe to T may see its presence. The answer is eventually consistent; see package
// presence for the bound.
func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) {
	topics := r.URL.Query()["topic"]
	if len(topics) != 1 {
		s.writeError(w, r, fmt.Errorf("%w: give exactly one topic", ErrBadRequest))
		return
	}
	f, err := hub.NewFilter(topics)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.subscribeRequest(r, f); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Presence.Lookup(topics[0]))
}
