// Package web holds the pages Herald serves itself: the start page and the demos. They are
// embedded in the binary, so there is no build step and nothing to install at run time.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the embedded pages.
func Handler() http.Handler {
	sub, _ := fs.Sub(static, "static")
	return http.FileServerFS(sub)
}
