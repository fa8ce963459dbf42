package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
)

// CallJSON makes a synchronous call to another service's API (path under
// /api/v1), forwarding the caller's bearer token and correlation id. A 2xx
// response is decoded into out (if not nil); an error response becomes an
// *eventmart.Error with the callee's code and message; a transport failure
// is EUNAVAILABLE.
func (d Deps) CallJSON(ctx context.Context, svc, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("service: call %s: %w", svc, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.BaseURL(svc)+path, body)
	if err != nil {
		return fmt.Errorf("service: call %s: %w", svc, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if id := httpx.CorrelationID(ctx); id != "" {
		req.Header.Set(httpx.HeaderCorrelationID, id)
	}
	if id, ok := auth.FromContext(ctx); ok && id.Token != "" {
		req.Header.Set("Authorization", "Bearer "+id.Token)
	}
	resp, err := d.Call(svc).Do(req)
	if err != nil {
		return eventmart.Errorf(eventmart.EUNAVAILABLE, "the %s service is unavailable", svc)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb httpx.ErrorBody
		if json.NewDecoder(resp.Body).Decode(&eb) == nil && eb.Error.Code != "" {
			return &eventmart.Error{Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return eventmart.Errorf(eventmart.EUNAVAILABLE, "the %s service answered %s", svc, resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("service: decode %s response: %w", svc, err)
	}
	return nil
}
