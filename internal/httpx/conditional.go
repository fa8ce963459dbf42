package httpx

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxWait caps how long a request may ask to be held with Prefer: wait.
const MaxWait = 30 * time.Second

// Representation is a JSON body with its entity tag, for conditional GETs.
type Representation struct {
	Body []byte
	ETag string // a strong tag: a digest of Body, quoted
}

// Represent encodes v as the JSON body JSON would write, and tags it.
func Represent(v any) (Representation, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Representation{}, err
	}
	b = append(b, '\n')
	sum := sha256.Sum256(b)
	return Representation{Body: b, ETag: `"` + hex.EncodeToString(sum[:12]) + `"`}, nil
}

// Write sends the representation with its ETag: 304 Not Modified without
// a body if the request's If-None-Match names it, else status and body.
func (rep Representation) Write(w http.ResponseWriter, r *http.Request, status int) {
	if NoneMatch(r, rep.ETag) {
		w.Header().Set("ETag", rep.ETag)
		NoStore(w.Header())
		w.WriteHeader(http.StatusNotModified)
		return
	}
	rep.WriteFresh(w, status)
}

// WriteFresh sends the representation with its ETag, status and body,
// whatever the request's conditions: the answer of the request that made
// it (POST), whose ETag a following conditional GET may name.
func (rep Representation) WriteFresh(w http.ResponseWriter, status int) {
	w.Header().Set("ETag", rep.ETag)
	NoStore(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(rep.Body)
}

// NoneMatch reports whether the request's If-None-Match header matches
// etag (RFC 9110 §13.1.2: weak comparison, "*" matches any).
func NoneMatch(r *http.Request, etag string) bool {
	h := r.Header.Get("If-None-Match")
	if h == "" {
		return false
	}
	for _, t := range strings.Split(h, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// PreferWait returns the wait the request asks for with "Prefer: wait=N"
// (RFC 7240, seconds; read as Preference reads it), capped at MaxWait; 0
// if it asks for none or the value is not a non-negative integer.
func PreferWait(r *http.Request) time.Duration {
	v, ok := Preference(r, "wait")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, MaxWait)
}

// Preference returns the value of the preference name (RFC 7240: its
// token compared without regard to case, its value unquoted, its
// parameters after ";" dropped) in the request's Prefer headers — its
// first instance, as RFC 7240 asks — and whether the request names it. A
// preference the server does not know is ignored, as RFC 7240 requires,
// so a client may send a new one to an older server.
func Preference(r *http.Request, name string) (string, bool) {
	for _, h := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(h, ",") {
			p, _, _ = strings.Cut(p, ";")
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), name) {
				return strings.Trim(strings.TrimSpace(v), `"`), true
			}
		}
	}
	return "", false
}
