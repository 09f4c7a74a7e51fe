// Package heraldjs serves the browser client, herald.js, from the herald binary, so that a page
// can import it from the server it subscribes to and the two never disagree on the protocol.
//
// Mount it at /herald.js:
//
//	mux.Handle("GET /herald.js", heraldjs.Handler())
package heraldjs

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed herald.js
var source []byte

// etag changes with the file, so browsers revalidate cheaply and never keep a stale client.
var etag = func() string {
	sum := sha256.Sum256(source)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// Source returns the module's text.
func Source() []byte { return bytes.Clone(source) }

// Handler serves herald.js as a JavaScript module. Cross-origin pages may import it: the
// module carries no secret, and the stream endpoints do their own access checks.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "no-cache") // revalidate with the ETag: a new server means a new client
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("ETag", etag)
		http.ServeContent(w, r, "herald.js", time.Time{}, bytes.NewReader(source))
	})
}
