package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/eventmart/eventmart/internal/httpx"
)

//go:embed web
var web embed.FS

// Assets serves the console's front end (HTML, CSS and JavaScript modules
// embedded into the binary; nothing is loaded from elsewhere) for paths
// under /console/. The files are public: every call they make for data
// needs an admin token.
func Assets() http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	files := http.StripPrefix("/console/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'")
		name := strings.TrimPrefix(r.URL.Path, "/console/")
		if name == "" {
			name = "index.html"
		}
		if fi, err := fs.Stat(sub, name); err != nil || fi.IsDir() {
			httpx.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// Favicon serves GET /favicon.ico, which browsers ask for on any page of
// the origin: the console's icon (SVG).
func Favicon(w http.ResponseWriter, r *http.Request) {
	b, err := web.ReadFile("web/favicon.svg")
	if err != nil {
		httpx.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "max-age=86400")
	w.Write(b)
}
