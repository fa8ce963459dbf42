package httpx

import (
	"net/http"
	"strconv"
)

// NextPage is the "next" field of a list answer: the path and query of the
// page after this one (r's, with offset moved on by limit) when this page
// holds n = limit items, else nil (the last page). A client follows next
// until it is null, without counting. Lists carry no total: counting every
// match would cost each page a second query.
func NextPage(r *http.Request, n, limit, offset int) *string {
	if n < limit || offset+limit > MaxOffset {
		return nil
	}
	q := r.URL.Query()
	q.Set("limit", strconv.Itoa(limit))
	q.Set("offset", strconv.Itoa(offset+limit))
	next := r.URL.Path + "?" + q.Encode()
	return &next
}
