package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/herald-push/herald/internal/heraldtest"
)

func TestPresence(t *testing.T) {
	srv := heraldtest.NewServer(t, heraldtest.Options{})
	srv.SSE(t, "/events?topic=room/1", "")
	srv.SSE(t, "/events?topic=room/*", "")
	srv.SSE(t, "/events?topic=room/2", "")

	for _, tc := range []struct {
		topic string
		want  int
	}{
		{"room/1", 2}, // one exact, one pattern
		{"room/2", 2},
		{"room/3", 1},
		{"room/*", 1}, // a pattern counts subscriptions naming that pattern
		{"other", 0},
	} {
		code, body := heraldtest.Do(t, "GET", srv.URL+"/presence?topic="+tc.topic, "", "", nil)
		var got struct {
			Topic       string
			Subscribers int
			Identities  []string
		}
		json.Unmarshal([]byte(body), &got)
		if code != http.StatusOK || got.Topic != tc.topic || got.Subscribers != tc.want || got.Identities == nil {
			t.Errorf("GET /presence?topic=%s = %d %s, want 200 with %d subscribers and an identities list", tc.topic, code, body, tc.want)
		}
	}
	if code, _ := heraldtest.Do(t, "GET", srv.URL+"/presence?topic=a&topic=b", "", "", nil); code != http.StatusBadRequest {
		t.Errorf("two topics: %d, want 400", code)
	}
	if code, _ := heraldtest.Do(t, "GET", srv.URL+"/presence?topic=bad//topic", "", "", nil); code != http.StatusBadRequest {
		t.Errorf("bad topic: %d, want 400", code)
	}
}
