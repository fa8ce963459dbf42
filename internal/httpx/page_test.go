package httpx_test

import (
	"net/http/httptest"
	"testing"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/httpx"
)

func TestPage(t *testing.T) {
	cases := []struct {
		query         string
		limit, offset int
		err           string // the EINVALID message, or "" for none
	}{
		{"", 50, 0, ""},
		{"?limit=1&offset=0", 1, 0, ""},
		{"?limit=500&offset=2147483648", 500, 1 << 31, ""},
		{"?offset=7", 50, 7, ""},
		{"?limit=0", 0, 0, "limit: must be an integer from 1 to 500"},
		{"?limit=501", 0, 0, "limit: must be an integer from 1 to 500"},
		{"?limit=ten", 0, 0, "limit: must be an integer from 1 to 500"},
		{"?offset=-1", 0, 0, "offset: must be an integer from 0 to 2147483648"},
		{"?offset=2147483649", 0, 0, "offset: must be an integer from 0 to 2147483648"},
		{"?limit=0&offset=-1", 0, 0, "limit: must be an integer from 1 to 500"}, // the first bad one
	}
	for _, c := range cases {
		limit, offset, err := httpx.Page(httptest.NewRequest("GET", "/x"+c.query, nil))
		if c.err != "" {
			if eventmart.ErrorCode(err) != eventmart.EINVALID || eventmart.ErrorMessage(err) != c.err {
				t.Errorf("%s: err = %v, want EINVALID %q", c.query, err, c.err)
			}
			continue
		}
		if err != nil || limit != c.limit || offset != c.offset {
			t.Errorf("%s: Page = %d, %d, %v; want %d, %d", c.query, limit, offset, err, c.limit, c.offset)
		}
	}
}

func TestIntParam(t *testing.T) {
	cases := []struct {
		s    string
		want int
		err  string
	}{
		{"", 100, ""},
		{"1", 1, ""},
		{"1000", 1000, ""},
		{"0", 0, "limit: must be an integer from 1 to 1000"},
		{"1001", 0, "limit: must be an integer from 1 to 1000"},
		{"1.5", 0, "limit: must be an integer from 1 to 1000"},
		{" 5", 0, "limit: must be an integer from 1 to 1000"},
	}
	for _, c := range cases {
		n, err := httpx.IntParam(c.s, "limit", 100, 1, 1000)
		if c.err != "" {
			if eventmart.ErrorCode(err) != eventmart.EINVALID || eventmart.ErrorMessage(err) != c.err {
				t.Errorf("%q: err = %v, want EINVALID %q", c.s, err, c.err)
			}
			continue
		}
		if err != nil || n != c.want {
			t.Errorf("%q: IntParam = %d, %v; want %d", c.s, n, err, c.want)
		}
	}
}
