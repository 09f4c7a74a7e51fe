package poll

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/herald-push/herald/internal/hub"
)

type response struct {
	Messages []*hub.Message
	Next     string
	Gap      *hub.Gap
}

var slot = hub.EncodingSlot()

// encoded returns the message's shared JSON form, encoded once for every poller that gets it.
func encoded(m *hub.Message) []byte {
	return m.Encoded(slot, func(m *hub.Message) []byte { return m.AppendJSON(nil) })
}

func write(w http.ResponseWriter, resp response) {
	b := make([]byte, 0, 256)
	b = append(b, `{"messages":[`...)
	for i, m := range resp.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, encoded(m)...)
	}
	b = append(b, `],"next":`...)
	b = strconv.AppendQuote(b, resp.Next)
	if g := resp.Gap; g != nil {
		// The gap echoes the client's since, which may be anything: full JSON escaping.
		gap, _ := json.Marshal(g)
		b = append(b, `,"gap":`...)
		b = append(b, gap...)
	}
	b = append(b, "}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
