package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Handler serves the store over the subset of the Confluent Schema
// Registry REST API that Apicurio Registry offers at /apis/ccompat/v7 and
// franz-go's sr client uses:
//
//	GET    /subjects                                  subjects
//	GET    /subjects/{s}/versions                     versions of s
//	GET    /subjects/{s}/versions/{v|latest}          one version
//	GET    /subjects/{s}/versions/{v|latest}/schema   its schema alone
//	POST   /subjects/{s}/versions                     register {"schema","schemaType":"JSON"} → {"id"}
//	POST   /subjects/{s}                              look a schema up in s
//	DELETE /subjects/{s}                              delete s
//	GET    /schemas/ids/{id}                          a schema by id
//	GET    /config, PUT /config                       global compatibility level
//	GET    /config/{s}[?defaultToGlobal=true], PUT, DELETE   s's level
//	POST   /compatibility/subjects/{s}/versions[/{v|latest}]  {"is_compatible","messages"}
//
// Errors are {"error_code","message"} with Confluent's codes: 40401
// subject, 40402 version, 40403 schema not found, 40408 no subject level,
// 409 incompatible, 42201 invalid schema, 42203 invalid level, 413 a
// request body over MaxRequest or a schema over MaxSchema. allowWrite, if
// set, is asked before every write (register, delete, config change) and
// compatibility check, the costly operation; an error from it is the
// response (for example 401 or 403).
func Handler(s *Store, allowWrite func(*http.Request) error) http.Handler {
	mux := http.NewServeMux()
	h := &handler{s: s, allow: allowWrite}
	mux.HandleFunc("GET /subjects", h.subjects)
	mux.HandleFunc("GET /subjects/{s}/versions", h.versions)
	mux.HandleFunc("GET /subjects/{s}/versions/{v}", h.version)
	mux.HandleFunc("GET /subjects/{s}/versions/{v}/schema", h.versionSchema)
	mux.HandleFunc("POST /subjects/{s}/versions", h.write(h.register))
	mux.HandleFunc("POST /subjects/{s}", h.lookup)
	mux.HandleFunc("DELETE /subjects/{s}", h.write(h.deleteSubject))
	mux.HandleFunc("GET /schemas/ids/{id}", h.schemaByID)
	mux.HandleFunc("GET /config", h.config)
	mux.HandleFunc("PUT /config", h.write(h.setConfig))
	mux.HandleFunc("GET /config/{s}", h.config)
	mux.HandleFunc("PUT /config/{s}", h.write(h.setConfig))
	mux.HandleFunc("DELETE /config/{s}", h.write(h.deleteConfig))
	mux.HandleFunc("POST /compatibility/subjects/{s}/versions", h.write(h.compatibility))
	mux.HandleFunc("POST /compatibility/subjects/{s}/versions/{v}", h.write(h.compatibility))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, &Error{Status: 404, Code: 404, Msg: fmt.Sprintf("HTTP 404 Not Found: %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

type handler struct {
	s     *Store
	allow func(*http.Request) error
}

const contentType = "application/vnd.schemaregistry.v1+json"

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", contentType)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

func writeErr(w http.ResponseWriter, err error) {
	var e *Error
	var inc *IncompatibleError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &inc):
		e = &Error{Status: 409, Code: 409, Msg: inc.Error()}
	default:
		e = &Error{Status: 500, Code: 50001, Msg: err.Error()}
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(map[string]any{"error_code": e.Code, "message": e.Msg}) //nolint:errcheck
}

func (h *handler) write(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.allow != nil {
			if err := h.allow(r); err != nil {
				writeErr(w, err)
				return
			}
		}
		fn(w, r)
	}
}

// Size bounds: parsing and comparing schemas costs CPU in proportion to
// their size, and Eventmart's largest schema is a few KiB.
const (
	MaxSchema  = 256 << 10 // bytes of one schema
	MaxRequest = 1 << 20   // bytes of a request body (the schema is escaped in it)
)

// readBody reads r's body, at most limit bytes; more is a 413.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	tooLarge := &Error{Status: 413, Code: 413, Msg: fmt.Sprintf("the request body is larger than %d bytes", limit)}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return nil, tooLarge
	}
	if err != nil {
		return nil, &Error{Status: 400, Code: 400, Msg: "cannot read the request: " + err.Error()}
	}
	return b, nil
}

// body decodes a request's {"schema", "schemaType"} (schemaType defaults
// to AVRO in the Confluent API, which the built-in registry rejects).
func body(r *http.Request) (schema, typ string, err error) {
	var in struct {
		Schema     *string `json:"schema"`
		SchemaType string  `json:"schemaType"`
	}
	b, err := readBody(r, MaxRequest)
	if err != nil {
		return "", "", err
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return "", "", &Error{Status: 400, Code: 400, Msg: "the request is not JSON: " + err.Error()}
	}
	if in.Schema == nil {
		return "", "", invalid(42201, "Invalid schema: no schema in the request")
	}
	if len(*in.Schema) > MaxSchema {
		return "", "", &Error{Status: 413, Code: 413, Msg: fmt.Sprintf("the schema is larger than %d bytes", MaxSchema)}
	}
	if in.SchemaType == "" {
		in.SchemaType = "AVRO"
	}
	return *in.Schema, in.SchemaType, nil
}

// version parses {v}: a positive number, or "latest" (-1).
func version(r *http.Request) (int, error) {
	v := r.PathValue("v")
	if v == "" {
		return -2, nil
	}
	if v == "latest" || v == "-1" {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, invalid(42202, "The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", v)
	}
	return n, nil
}

func (h *handler) subjects(w http.ResponseWriter, r *http.Request) {
	out, err := h.s.Subjects()
	if err != nil {
		writeErr(w, err)
		return
	}
	if out == nil {
		out = []string{}
	}
	writeJSON(w, out)
}

func (h *handler) versions(w http.ResponseWriter, r *http.Request) {
	out, err := h.s.Versions(r.PathValue("s"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, out)
}

func (h *handler) get(r *http.Request) (Version, error) {
	v, err := version(r)
	if err != nil {
		return Version{}, err
	}
	return h.s.Get(r.PathValue("s"), v)
}

func (h *handler) version(w http.ResponseWriter, r *http.Request) {
	out, err := h.get(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, out)
}

func (h *handler) versionSchema(w http.ResponseWriter, r *http.Request) {
	out, err := h.get(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	io.WriteString(w, out.Schema) //nolint:errcheck
}

func (h *handler) register(w http.ResponseWriter, r *http.Request) {
	schema, typ, err := body(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	id, err := h.s.Register(r.PathValue("s"), schema, typ)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]int{"id": id})
}

func (h *handler) lookup(w http.ResponseWriter, r *http.Request) {
	schema, typ, err := body(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	out, err := h.s.Lookup(r.PathValue("s"), schema, typ)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, out)
}

func (h *handler) deleteSubject(w http.ResponseWriter, r *http.Request) {
	out, err := h.s.DeleteSubject(r.PathValue("s"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, out)
}

func (h *handler) schemaByID(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 1 {
		writeErr(w, notFound(40403, "Schema %s not found", r.PathValue("id")))
		return
	}
	out, err := h.s.SchemaByID(id)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]string{"schema": out.Schema, "schemaType": out.Type})
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	m, err := h.s.Config(r.PathValue("s"), r.URL.Query().Get("defaultToGlobal") == "true")
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]Mode{"compatibilityLevel": m})
}

func (h *handler) setConfig(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Compatibility string `json:"compatibility"`
	}
	b, err := readBody(r, 1<<16)
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := json.Unmarshal(b, &in); err != nil {
		writeErr(w, &Error{Status: 400, Code: 400, Msg: "the request is not JSON: " + err.Error()})
		return
	}
	m, err := ParseMode(in.Compatibility)
	if err != nil {
		writeErr(w, invalid(42203, "Invalid compatibility level %q", in.Compatibility))
		return
	}
	if err := h.s.SetConfig(r.PathValue("s"), m); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]Mode{"compatibility": m})
}

func (h *handler) deleteConfig(w http.ResponseWriter, r *http.Request) {
	m, err := h.s.DeleteConfig(r.PathValue("s"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, map[string]Mode{"compatibility": m})
}

func (h *handler) compatibility(w http.ResponseWriter, r *http.Request) {
	v, err := version(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	schema, typ, err := body(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	viol, err := h.s.CheckCompatibility(r.PathValue("s"), v, schema, typ)
	if err != nil {
		writeErr(w, err)
		return
	}
	msgs := make([]string, len(viol))
	for i, x := range viol {
		msgs[i] = x.String()
	}
	writeJSON(w, map[string]any{"is_compatible": len(viol) == 0, "messages": msgs})
}
