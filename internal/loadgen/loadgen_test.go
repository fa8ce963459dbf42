package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// An answer that leaves the outcome open is retried with the same
// Idempotency-Key; an answer that refuses the order is not.
func TestPlaceRetriesWithTheSameIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	answers := []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusAccepted}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == "GET" {
			w.Write([]byte(`{"id":"o1","status":"SHIPPED"}`))
			return
		}
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		status := answers[min(len(keys)-1, len(answers)-1)]
		w.WriteHeader(status)
		if status == http.StatusAccepted {
			w.Write([]byte(`{"id":"o1","status":"PENDING"}`))
		} else {
			w.Write([]byte(`{"error":{"code":"bad_gateway","message":"x"}}`))
		}
	}))
	defer srv.Close()
	c := &client{base: srv.URL, http: srv.Client()}
	status, _, accepted, err := placeAndFollow(context.Background(), c, "tok", "p1", false, nil)
	if err != nil || !accepted || status != "SHIPPED" {
		t.Fatalf("placeAndFollow = %q, accepted %v, %v", status, accepted, err)
	}
	if len(keys) != 4 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] || keys[3] != keys[0] {
		t.Fatalf("keys sent: %q; want the same non-empty key four times", keys)
	}

	mu.Lock()
	answers, keys = []int{http.StatusConflict}, nil
	mu.Unlock()
	_, _, accepted, err = placeAndFollow(context.Background(), c, "tok", "p1", false, nil)
	var se *statusError
	if accepted || !errors.As(err, &se) || se.code != http.StatusConflict || len(keys) != 1 {
		t.Fatalf("a 409 was retried or accepted: accepted %v, %v, %d tries", accepted, err, len(keys))
	}
	if got := failureReason(err, false); !strings.HasPrefix(got, "POST 409") {
		t.Fatalf("failure reason %q", got)
	}
}
