package app

import (
	"bytes"
	"io"
	"net/http"
)

// recorder is a minimal in-memory http.ResponseWriter for in-process calls.
type recorder struct {
	req    *http.Request
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder(r *http.Request) *recorder {
	return &recorder{req: r, header: http.Header{}}
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

func (r *recorder) result() *http.Response {
	r.WriteHeader(http.StatusOK)
	return &http.Response{
		Status: http.StatusText(r.status), StatusCode: r.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: r.header, Body: io.NopCloser(&r.body), ContentLength: int64(r.body.Len()), Request: r.req,
	}
}
