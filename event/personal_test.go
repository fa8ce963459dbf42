package event_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
)

// keyring is an event.Keys over a map; a missing user is erased.
type keyring map[string][]byte

func (k keyring) PersonalKey(_ context.Context, id string) ([]byte, error) {
	if key, ok := k[id]; ok {
		return key, nil
	}
	return nil, fmt.Errorf("user %s: %w", id, event.ErrErased)
}

func TestPersonalSealsAndErases(t *testing.T) {
	ctx := context.Background()
	keys := keyring{"u1": bytes.Repeat([]byte{1}, 32), "u2": bytes.Repeat([]byte{2}, 32)}
	sealed, err := event.Seal(keys["u1"], "u1", "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	e, err := event.New("user-service", event.Origin{}, &event.UserRegistered{UserID: "u1", Email: sealed, Name: sealed, Role: "customer"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Data), "ann@") {
		t.Fatalf("the email is in clear: %s", e.Data)
	}
	p, err := e.Payload()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := p.(*event.UserRegistered).Email.Open(ctx, keys); err != nil || v != "ann@example.com" {
		t.Errorf("opened %q, %v", v, err)
	}
	// Another user's key does not open it, nor does a value moved to
	// another user's name (the user id is the additional data).
	moved := *sealed.Sealed
	moved.Kid = "u2"
	if _, err := moved.OpenWith(keys["u2"]); err == nil {
		t.Error("a value sealed for u1 opened as u2's")
	}
	opened, err := event.OpenData(ctx, keys, e.Data)
	if err != nil || !strings.Contains(string(opened), `"email":"ann@example.com"`) {
		t.Errorf("OpenData: %s, %v", opened, err)
	}
	delete(keys, "u1") // the key destroyed
	if v, err := p.(*event.UserRegistered).Email.Open(ctx, keys); err != nil || v != event.Erased {
		t.Errorf("after erasure opened %q, %v", v, err)
	}
	opened, err = event.OpenData(ctx, keys, e.Data)
	if err != nil || !strings.Contains(string(opened), `"email":"[erased]"`) || strings.Contains(string(opened), "ann@") {
		t.Errorf("OpenData after erasure: %s, %v", opened, err)
	}
}

// Records written before sealing are upcast with their values in clear.
func TestPersonalV1IsUpcast(t *testing.T) {
	for typ, data := range map[event.Type]string{
		"UserRegistered": `{"userId":"u1","email":"a@b.c","name":"A","role":"customer"}`,
		"UserUpdated":    `{"userId":"u1","email":"a@b.c","name":"A","changed":["name"]}`,
		"UserLoggedIn":   `{"userId":"u1","email":"a@b.c","role":"customer"}`,
		"LoginFailed":    `{"email":"a@b.c","reason":"invalid-credentials"}`,
	} {
		e := &event.Envelope{EventType: typ, EventVersion: "v1", Data: json.RawMessage(data)}
		p, err := e.Payload()
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		b, _ := json.Marshal(p)
		if !strings.Contains(string(b), `"email":"a@b.c"`) {
			t.Errorf("%s upcast to %s", typ, b)
		}
		if lf, ok := p.(*event.LoginFailed); ok && lf.Account != "a@b.c" {
			t.Errorf("LoginFailed v1 upcast with account %q", lf.Account)
		}
	}
}

// A postal address is sealed whole (one value, "v1/json"); it reads back
// as an address, from its JSON or a table's column, and once its key is
// destroyed as ErasedAddress; OpenData shows it as an object, MaskData as
// "[sealed]". Personal values stored in a column (Value, Scan) keep their
// form.
func TestPersonalAddressSealsAndErases(t *testing.T) {
	ctx := context.Background()
	keys := keyring{"u1": make([]byte, event.PersonalKeySize)}
	a := event.Address{Name: "Ann", Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "DE"}
	sealed, err := event.SealAddress(keys["u1"], "u1", a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(sealed)
	if err != nil || strings.Contains(string(b), "Main") || !strings.Contains(string(b), `"enc":"v1/json"`) {
		t.Fatalf("sealed address %s, %v", b, err)
	}
	var back event.PersonalAddress
	if err := json.Unmarshal(b, &back); err != nil || back.Sealed == nil {
		t.Fatalf("read back %+v, %v", back, err)
	}
	if got, err := back.Open(ctx, keys); err != nil || got != a {
		t.Errorf("opened %+v, %v", got, err)
	}
	var plain event.PersonalAddress // an address from before sealing
	if err := json.Unmarshal([]byte(`{"name":"Bo","line1":"enc","city":"C","postalCode":"1","country":"GB"}`), &plain); err != nil || plain.Sealed != nil || plain.Clear.Line1 != "enc" {
		t.Errorf("clear address read as %+v, %v", plain, err)
	}
	data, _ := json.Marshal(map[string]any{"shippingAddress": sealed, "orderId": "o1"})
	opened, err := event.OpenData(ctx, keys, data)
	if err != nil || !strings.Contains(string(opened), `"shippingAddress":{"city":"Springfield"`) {
		t.Errorf("OpenData: %s, %v", opened, err)
	}
	masked, err := event.MaskData(data)
	if err != nil || string(masked) != `{"orderId":"o1","shippingAddress":"[sealed]"}` {
		t.Errorf("MaskData: %s, %v", masked, err)
	}

	email, _ := event.Seal(keys["u1"], "u1", "ann@example.com")
	for _, p := range []event.Personal{email, event.Plain("ann@example.com")} {
		v, err := p.Value()
		if err != nil {
			t.Fatal(err)
		}
		var got event.Personal
		if err := got.Scan(v); err != nil || (got.Sealed == nil) != (p.Sealed == nil) {
			t.Errorf("Scan(Value(%+v)) = %+v, %v", p, got, err)
		}
		if s, err := got.Open(ctx, keys); err != nil || s != "ann@example.com" {
			t.Errorf("the scanned value opens to %q, %v", s, err)
		}
	}

	delete(keys, "u1")
	if got, err := back.Open(ctx, keys); err != nil || got != event.ErasedAddress {
		t.Errorf("after erasure %+v, %v", got, err)
	}
	if opened, err := event.OpenData(ctx, keys, data); err != nil || !strings.Contains(string(opened), `"shippingAddress":"[erased]"`) {
		t.Errorf("OpenData after erasure: %s, %v", opened, err)
	}
}

// BenchmarkSealOrder: what placing an order adds for its personal data —
// the customer's email and name and the address sealed (three AES-GCM
// operations), as the order service does once per order.
func BenchmarkSealOrder(b *testing.B) {
	key := make([]byte, event.PersonalKeySize)
	a := event.Address{Name: "Ann Smith", Line1: "1 Main Street", City: "Springfield", PostalCode: "12345", Country: "DE"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.Seal(key, "0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b", "ann@example.com"); err != nil {
			b.Fatal(err)
		}
		if _, err := event.Seal(key, "0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b", "Ann Smith"); err != nil {
			b.Fatal(err)
		}
		if _, err := event.SealAddress(key, "0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b", a); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSealedJSONIsJSONMarshal: a sealed value is written, in events and in
// columns, as json.Marshal writes its struct, whatever its strings hold.
func TestSealedJSONIsJSONMarshal(t *testing.T) {
	for _, s := range []event.Sealed{
		{Enc: event.SealV1, Kid: "u-1", CT: "AAECAwQ+/w=="},
		{Enc: event.SealV1JSON, Kid: "ü<&>\"\\\n\u2028\xff", CT: ""},
		{},
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string]func() ([]byte, error){
			"Personal":        func() ([]byte, error) { return json.Marshal(event.Personal{Sealed: &s}) },
			"PersonalAddress": func() ([]byte, error) { return json.Marshal(event.PersonalAddress{Sealed: &s}) },
			"Personal.Value": func() ([]byte, error) {
				v, err := event.Personal{Sealed: &s}.Value()
				str, _ := v.(string)
				return []byte(str), err
			},
		} {
			b, err := got()
			if err != nil || !bytes.Equal(b, want) {
				t.Errorf("%s of %+v: %s, %v; want %s", name, s, b, err, want)
			}
		}
	}
}

// BenchmarkMarshalSealedAddress is an event's sealed address written as
// JSON (in a payload json.Marshal writes):
//
//	go test -run '^$' -bench MarshalSealedAddress -benchmem ./event/
func BenchmarkMarshalSealedAddress(b *testing.B) {
	a := event.PersonalAddress{Sealed: &event.Sealed{Enc: event.SealV1JSON, Kid: "0190f1c2-7a3b-7c4d-8e5f-0123456789ab",
		CT: strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", 4)}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(a); err != nil {
			b.Fatal(err)
		}
	}
}
