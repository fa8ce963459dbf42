// Package httpx is the HTTP plumbing every service shares: JSON in and
// out, the one place where application errors become status codes, and the
// correlation-id, recovery and access-log middleware.
package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// MaxBody is the largest request body accepted, in bytes.
const MaxBody = 1 << 20

// Decode strictly reads a JSON request body into v:
//   - a Content-Type other than application/json (or a +json type) is an
//     EMEDIATYPE error (415): a form or text/plain body is not JSON, and a
//     browser may send those cross-origin without a preflight;
//   - more than MaxBody bytes is ETOOLARGE (413);
//   - unknown fields, field names that differ from the declared ones in
//     case only (encoding/json would take them), duplicate keys (it would
//     keep the last), a wrong type or trailing data are EINVALID, naming
//     the problem.
//
// Handlers of bodiless requests (POST …/cancel, …/redrive) do not call
// Decode, so those need no Content-Type.
func Decode(r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	b, err := ReadBody(r)
	if err != nil {
		return err
	}
	return DecodeBytes(b, v)
}

// ReadBody reads r's body: more than MaxBody bytes is ETOOLARGE (413).
func ReadBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBody {
		return nil, tooLarge()
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBody))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return nil, tooLarge()
	}
	if err != nil {
		return nil, eventmart.Errorf(eventmart.EINVALID, "request body: %v", err)
	}
	return b, nil
}

// DecodeBytes is Decode of a body already read (at most MaxBody bytes).
func DecodeBytes(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return eventmart.Errorf(eventmart.EINVALID, "request body: %s", jsonReason(err))
	}
	// dec.More would miss trailing data that starts with } or ].
	if _, err := dec.Token(); err != io.EOF {
		return eventmart.Errorf(eventmart.EINVALID, "request body: trailing data after the JSON object")
	}
	// The document is valid and every key names a field, in some case;
	// a second pass over it refuses what encoding/json forgives.
	if err := strictNames(b, reflect.TypeOf(v)); err != nil {
		return eventmart.Errorf(eventmart.EINVALID, "request body: %v", err)
	}
	return nil
}

func tooLarge() error {
	return eventmart.Errorf(eventmart.ETOOLARGE, "request body larger than %d bytes", MaxBody)
}

// requireJSON refuses a request whose Content-Type is not JSON.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	if ct == "" {
		ct = "none"
	}
	return eventmart.Errorf(eventmart.EMEDIATYPE, "Content-Type must be application/json, not %s", ct)
}

func jsonReason(err error) string {
	var typeErr *json.UnmarshalTypeError
	var synErr *json.SyntaxError
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &synErr):
		return fmt.Sprintf("malformed JSON at byte %d", synErr.Offset)
	case errors.As(err, &maxErr):
		return fmt.Sprintf("larger than %d bytes", maxErr.Limit)
	case errors.Is(err, io.EOF):
		return "empty; a JSON object is required"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return err.Error()
}

func jsonType(kind string) string {
	switch kind {
	case "int", "int32", "int64", "uint", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return kind
}

// JSON writes v with status, marked not to be sniffed as another type or
// stored by caches (answers carry personal data and tokens).
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	NoStore(w.Header())
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// NoStore sets the headers every JSON answer carries:
// X-Content-Type-Options: nosniff and Cache-Control: no-store.
func NoStore(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

var statusOf = map[string]int{
	eventmart.EINVALID:       http.StatusBadRequest,
	eventmart.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	eventmart.EMEDIATYPE:     http.StatusUnsupportedMediaType,
	eventmart.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	eventmart.EUNAUTHORIZED:  http.StatusUnauthorized,
	eventmart.EFORBIDDEN:     http.StatusForbidden,
	eventmart.ENOTFOUND:      http.StatusNotFound,
	eventmart.EMETHOD:        http.StatusMethodNotAllowed,
	eventmart.ECONFLICT:      http.StatusConflict,
	eventmart.EUNAVAILABLE:   http.StatusServiceUnavailable,
	eventmart.EBADGATEWAY:    http.StatusBadGateway,
	eventmart.ETIMEOUT:       http.StatusGatewayTimeout,
	eventmart.EINTERNAL:      http.StatusInternalServerError,
}

// Status returns the HTTP status of an application error code.
func Status(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error writes err as {"error":{"code","message"}} with the status of its
// code. Internal errors are logged with the request's correlation id and
// shown to the caller only as "internal error" — except a database that
// could not be reached or went away (sqldb.Unavailable), which is no bug:
// 503 "unavailable", logged as a warning. A 503 tells the caller when to
// try again: Retry-After, 1 s unless the handler set its own.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	code := eventmart.ErrorCode(err)
	if code == eventmart.EINTERNAL && sqldb.Unavailable(err) {
		Logger(r.Context()).WarnContext(r.Context(), "request failed: database unavailable", "method", r.Method, "path", r.URL.Path, "error", err)
		err = eventmart.Errorf(eventmart.EUNAVAILABLE, "the service's database is unavailable: retry later (a POST with the same Idempotency-Key)")
		code = eventmart.EUNAVAILABLE
	}
	if code == eventmart.EINTERNAL {
		Logger(r.Context()).ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	if code == eventmart.EUNAVAILABLE && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	JSON(w, Status(code), ErrorBodyOf(err))
}

// ErrorBodyOf is the JSON error body of err, as Error writes it.
func ErrorBodyOf(err error) ErrorBody {
	var body ErrorBody
	body.Error.Code, body.Error.Message = eventmart.ErrorCode(err), eventmart.ErrorMessage(err)
	return body
}

type ctxKey int

const (
	correlationKey ctxKey = iota
	loggerKey
)

// HeaderCorrelationID is the request and response header of the
// correlation id.
const HeaderCorrelationID = "X-Correlation-ID"

// CorrelationID returns the request's correlation id.
func CorrelationID(ctx context.Context) string {
	s, _ := ctx.Value(correlationKey).(string)
	return s
}

// WithCorrelationID returns ctx carrying id.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey, id)
}

// Logger returns the request's logger (with its correlation id), or the
// default logger.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// validCorrelationID accepts what a client may reasonably send: 1 to 128
// printable ASCII characters without spaces.
func validCorrelationID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Middleware wraps h with, outermost first: panic recovery (500 with a
// JSON body), the correlation id (taken from X-Correlation-ID or a new
// UUIDv7, echoed on the response and put in ctx and the logger), and an
// access log line per request.
func Middleware(log *slog.Logger, service string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderCorrelationID)
		if !validCorrelationID(id) {
			id = event.NewID()
		}
		w.Header().Set(HeaderCorrelationID, id)
		l := log.With("service", service, "correlationId", id)
		ctx := context.WithValue(WithCorrelationID(r.Context(), id), loggerKey, l)
		r = r.WithContext(ctx)
		sw := NewStatusWriter(w)
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				l.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !sw.wrote {
					Error(sw, r, fmt.Errorf("panic: %v", p))
				}
			}
			l.DebugContext(ctx, "request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start))
		}()
		h.ServeHTTP(sw, r)
	})
}

// StatusWriter remembers the status of the response written through it.
// It passes Flush on (server-sent events) and unwraps for
// http.ResponseController.
type StatusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

// NewStatusWriter wraps w; the status is 200 until a handler writes.
func NewStatusWriter(w http.ResponseWriter) *StatusWriter {
	return &StatusWriter{ResponseWriter: w, status: http.StatusOK}
}

// Status is the response's status code.
func (w *StatusWriter) Status() int { return w.status }

// Unwrap returns the wrapped writer.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *StatusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush lets server-sent events through the wrapper.
func (w *StatusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// NotFound is the JSON 404 for unknown routes.
func NotFound(w http.ResponseWriter, r *http.Request) {
	Error(w, r, eventmart.Errorf(eventmart.ENOTFOUND, "no route for %s %s", r.Method, r.URL.Path))
}

// Page reads the list parameters ?limit= (1-500, default 50) and ?offset=
// (default 0) of r; a bad value is an EINVALID error naming it.
func Page(r *http.Request) (limit, offset int, err error) {
	q := r.URL.Query()
	if limit, err = IntParam(q.Get("limit"), "limit", 50, 1, 500); err != nil {
		return 0, 0, err
	}
	if offset, err = IntParam(q.Get("offset"), "offset", 0, 0, MaxOffset); err != nil {
		return 0, 0, err
	}
	return limit, offset, nil
}

// MaxOffset is the largest ?offset= of a list.
const MaxOffset = 1 << 31

// IntParam reads the integer query parameter name, whose value is s: def
// when s is empty, an EINVALID error naming it and the bounds when s is
// not an integer from min to max. Page reads ?limit= and ?offset= with it;
// an API with other bounds uses it directly.
func IntParam(s, name string, def, min, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, eventmart.Errorf(eventmart.EINVALID, "%s: must be an integer from %d to %d", name, min, max)
	}
	return n, nil
}

// Unmatched serves mux, answering the requests no route of it matches
// with the JSON error body instead of ServeMux's plain text: 404 for an
// unknown path, 405 with the Allow header for a known path asked with a
// method it does not take. Redirects to a canonical path pass through.
func Unmatched(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &headerOnly{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusNotFound:
			NotFound(w, r)
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", probe.header.Get("Allow"))
			Error(w, r, eventmart.Errorf(eventmart.EMETHOD, "%s does not take %s (allowed: %s)", r.URL.Path, r.Method, probe.header.Get("Allow")))
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// headerOnly records a response's status and headers and drops its body.
type headerOnly struct {
	header http.Header
	status int
}

func (w *headerOnly) Header() http.Header         { return w.header }
func (w *headerOnly) WriteHeader(code int)        { w.status = code }
func (w *headerOnly) Write(b []byte) (int, error) { return len(b), nil }
