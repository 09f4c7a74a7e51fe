package heraldjs_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	heraldjs "github.com/herald-push/herald/clients/js"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(heraldjs.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/herald.js")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/javascript", ct)
	}
	if !bytes.Equal(body, heraldjs.Source()) || !bytes.Contains(body, []byte("export function connect")) {
		t.Errorf("body is not herald.js (%d bytes)", len(body))
	}

	req, _ := http.NewRequest("GET", srv.URL+"/herald.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation status = %d, want 304", resp.StatusCode)
	}
}
