package jsonw_test

import (
	"encoding/json"
	"testing"

	"github.com/eventmart/eventmart/internal/jsonw"
)

// AppendString writes what json.Marshal writes, plain or not.
func TestAppendStringIsJSONMarshal(t *testing.T) {
	for _, s := range []string{"", "order-1", "a\"b", `back\slash`, "<b>&</b>", "tab\there", "del\x7f", "é", "\xff", "\u2028", "\x00", "~"} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonw.AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, want x%s", s, got, want)
		}
		ascii := true
		for i := 0; i < len(s); i++ {
			ascii = ascii && s[i] < 0x80
		}
		if plain := jsonw.Plain(s); plain != (ascii && string(want) == `"`+s+`"`) {
			t.Errorf("Plain(%q) = %v, json.Marshal writes %s", s, plain, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("order-1")
	f.Add("<&>")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := jsonw.AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}
