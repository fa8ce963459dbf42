package httpx

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestPreferWait(t *testing.T) {
	for _, c := range []struct {
		prefer []string
		want   time.Duration
	}{
		{nil, 0},
		{[]string{"wait=5"}, 5 * time.Second},
		{[]string{"respond-async, wait=10"}, 10 * time.Second},
		{[]string{"wait=20, until=final"}, 20 * time.Second}, // as an older release reads the order's hold until final
		{[]string{"return=minimal", "Wait = 3"}, 3 * time.Second},
		{[]string{"wait=3600"}, MaxWait},
		{[]string{"wait=-1"}, 0},
		{[]string{"wait=soon"}, 0},
		{[]string{"handling=lenient"}, 0},
		{[]string{`wait="7"; why=because`}, 7 * time.Second}, // its parameters are not its value
		{[]string{"wait=4", "wait=9"}, 4 * time.Second},      // the first instance counts
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for _, p := range c.prefer {
			r.Header.Add("Prefer", p)
		}
		if got := PreferWait(r); got != c.want {
			t.Errorf("Prefer %q: wait %v, want %v", c.prefer, got, c.want)
		}
	}
}

func TestPreference(t *testing.T) {
	for _, c := range []struct {
		prefer []string
		value  string
		ok     bool
	}{
		{nil, "", false},
		{[]string{"wait=20"}, "", false},
		{[]string{"wait=20, until=final"}, "final", true},
		{[]string{"wait=20", "Until = \"final\""}, "final", true},
		{[]string{"until=final; because=tests, wait=5"}, "final", true},
		{[]string{"until"}, "", true},
		{[]string{"untilx=final"}, "", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for _, p := range c.prefer {
			r.Header.Add("Prefer", p)
		}
		if v, ok := Preference(r, "until"); v != c.value || ok != c.ok {
			t.Errorf("Prefer %q: until %q %v, want %q %v", c.prefer, v, ok, c.value, c.ok)
		}
	}
}

func TestNoneMatchAndWrite(t *testing.T) {
	rep, err := Represent(map[string]string{"status": "PENDING"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Represent(map[string]string{"status": "SHIPPED"})
	if rep.ETag == other.ETag {
		t.Fatal("different bodies, same tag")
	}
	for _, c := range []struct {
		inm   string
		match bool
	}{
		{"", false},
		{rep.ETag, true},
		{"W/" + rep.ETag, true},
		{other.ETag + ", " + rep.ETag, true},
		{"*", true},
		{other.ETag, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.inm != "" {
			r.Header.Set("If-None-Match", c.inm)
		}
		if NoneMatch(r, rep.ETag) != c.match {
			t.Errorf("If-None-Match %q: match %v, want %v", c.inm, !c.match, c.match)
		}
		w := httptest.NewRecorder()
		rep.Write(w, r, 200)
		want := 200
		if c.match {
			want = 304
		}
		if w.Code != want || w.Header().Get("ETag") != rep.ETag || (want == 304) != (w.Body.Len() == 0) {
			t.Errorf("If-None-Match %q: %d, ETag %q, body %q", c.inm, w.Code, w.Header().Get("ETag"), w.Body)
		}
	}
}
