package event

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/eventmart/eventmart/internal/jsonw"
)

// Personal data in events is crypto-shredded (docs/security.md, "Erasure
// of personal data"): every personal field — an e-mail, a name, an
// address — is written sealed with its user's own AES-256-GCM key, which
// only the user service keeps. Erasing the user destroys the key: every
// event and audit record of that user still holds the same bytes (the
// audit hash chain still verifies) but reads as Erased.

// Erased is what a personal field reads as once its user's key is destroyed.
const Erased = "[erased]"

// SealV1 names the sealing of Sealed.Enc: AES-256-GCM, a random 12-byte
// nonce before the ciphertext, the user id as additional data (a value
// copied into another user's event does not open).
const SealV1 = "v1"

// SealV1JSON is SealV1 of a JSON value rather than a string: a whole
// postal address (PersonalAddress) is one sealed value, one AES-GCM
// operation instead of one per line.
const SealV1JSON = "v1/json"

// PersonalKeySize is the size of a user's key in bytes (AES-256).
const PersonalKeySize = 32

// ErrErased: the user's key is destroyed (or never existed): the sealed
// value cannot be read, ever. Keys return it (wrapped) for such a user.
var ErrErased = errors.New("personal data erased")

// Keys gives the key of a user's personal data. The user service keeps
// the keys; readers get them through an adapter the runtime wires (no
// service imports another). PersonalKey returns an error wrapping
// ErrErased for a user whose key is destroyed.
type Keys interface {
	PersonalKey(ctx context.Context, userID string) ([]byte, error)
}

// Sealed is a personal value sealed with the key of user Kid.
type Sealed struct {
	Enc string `json:"enc"` // SealV1
	Kid string `json:"kid"` // the user whose key sealed it
	CT  string `json:"ct"`  // base64(nonce ‖ ciphertext)
}

// appendJSON appends s's JSON to b as json.Marshal writes it, without
// its reflection: every event that carries personal data writes some.
func (s *Sealed) appendJSON(b []byte) []byte {
	if b == nil {
		b = make([]byte, 0, len(s.Enc)+len(s.Kid)+len(s.CT)+len(`{"enc":"","kid":"","ct":""}`))
	}
	b = append(b, `{"enc":`...)
	b = jsonw.AppendString(b, s.Enc)
	b = append(b, `,"kid":`...)
	b = jsonw.AppendString(b, s.Kid)
	b = append(b, `,"ct":`...)
	b = jsonw.AppendString(b, s.CT)
	return append(b, '}')
}

// Personal is a personal field of an event: in JSON either a string (a
// value from before encryption, in an upcast record of a prior version)
// or a Sealed object. Producers set Sealed (Seal); readers call Open.
type Personal struct {
	Clear  string
	Sealed *Sealed
}

// Plain is a Personal holding s in clear: upcasts of prior versions, and
// personal values that belong to no account (a login with an unknown
// e-mail).
func Plain(s string) Personal { return Personal{Clear: s} }

// MarshalJSON writes the sealed object, or the clear string.
func (p Personal) MarshalJSON() ([]byte, error) {
	if p.Sealed != nil {
		return p.Sealed.appendJSON(nil), nil
	}
	return json.Marshal(p.Clear)
}

// UnmarshalJSON reads a string or a sealed object.
func (p *Personal) UnmarshalJSON(b []byte) error {
	*p = Personal{}
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '{' {
		p.Sealed = &Sealed{}
		return json.Unmarshal(b, p.Sealed)
	}
	return json.Unmarshal(b, &p.Clear)
}

// Seal returns clear sealed with key, the key of user userID.
func Seal(key []byte, userID, clear string) (Personal, error) {
	s, err := sealBytes(key, SealV1, userID, []byte(clear))
	if err != nil {
		return Personal{}, err
	}
	return Personal{Sealed: s}, nil
}

func sealBytes(key []byte, enc, userID string, clear []byte) (*Sealed, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(clear)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("event: seal: %w", err)
	}
	ct := aead.Seal(nonce, nonce, clear, []byte(userID))
	return &Sealed{Enc: enc, Kid: userID, CT: base64.StdEncoding.EncodeToString(ct)}, nil
}

// OpenWith returns s's clear value with key (the key of s.Kid): a string
// (SealV1) or JSON text (SealV1JSON).
func (s *Sealed) OpenWith(key []byte) (string, error) {
	if s.Enc != SealV1 && s.Enc != SealV1JSON {
		return "", fmt.Errorf("event: open a personal value: unknown sealing %q", s.Enc)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	ct, err := base64.StdEncoding.DecodeString(s.CT)
	if err != nil || len(ct) < aead.NonceSize() {
		return "", fmt.Errorf("event: open a personal value of user %s: malformed", s.Kid)
	}
	clear, err := aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], []byte(s.Kid))
	if err != nil {
		return "", fmt.Errorf("event: open a personal value of user %s: %w", s.Kid, err)
	}
	return string(clear), nil
}

// Open returns p's clear value: Clear, or the sealed value opened with its
// user's key from keys — Erased if that key is destroyed.
func (p Personal) Open(ctx context.Context, keys Keys) (string, error) {
	if p.Sealed == nil {
		return p.Clear, nil
	}
	if keys == nil {
		return "", fmt.Errorf("event: a personal value of user %s, and no keys to open it (no user service)", p.Sealed.Kid)
	}
	key, err := keys.PersonalKey(ctx, p.Sealed.Kid)
	if errors.Is(err, ErrErased) {
		return Erased, nil
	}
	if err != nil {
		return "", fmt.Errorf("event: the key of user %s: %w", p.Sealed.Kid, err)
	}
	return p.Sealed.OpenWith(key)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != PersonalKeySize {
		return nil, fmt.Errorf("event: a personal key has %d bytes, want %d", len(key), PersonalKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	return cipher.NewGCM(block)
}

// OpenData returns data, an event's payload JSON, with every sealed value
// in it — at any depth — replaced by its clear string (Erased when its
// key is destroyed), for displays that show whole records (the admin's
// event query). Data without a sealed value is returned as it is.
func OpenData(ctx context.Context, keys Keys, data json.RawMessage) (json.RawMessage, error) {
	return replaceSealed(data, func(s *Sealed) (any, error) {
		clear, err := Personal{Sealed: s}.Open(ctx, keys)
		if err != nil || s.Enc != SealV1JSON || clear == Erased {
			return clear, err
		}
		var j any
		if err := json.Unmarshal([]byte(clear), &j); err != nil {
			return nil, fmt.Errorf("event: open personal data of user %s: %w", s.Kid, err)
		}
		return j, nil
	})
}

// replaceSealed returns data with every sealed value in it, at any depth,
// replaced by what with returns for it.
func replaceSealed(data json.RawMessage, with func(*Sealed) (any, error)) (json.RawMessage, error) {
	if !bytes.Contains(data, []byte(`"enc"`)) {
		return data, nil // no sealed value: the common case costs a scan
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("event: open personal data: %w", err)
	}
	v, err := replaceValue(v, with)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("event: open personal data: %w", err)
	}
	return out, nil
}

func replaceValue(v any, with func(*Sealed) (any, error)) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if s, ok := asSealed(v); ok {
			return with(s)
		}
		for k, m := range v {
			o, err := replaceValue(m, with)
			if err != nil {
				return nil, err
			}
			v[k] = o
		}
	case []any:
		for i, m := range v {
			o, err := replaceValue(m, with)
			if err != nil {
				return nil, err
			}
			v[i] = o
		}
	}
	return v, nil
}

// asSealed reports whether m is a Sealed object: exactly its three members.
func asSealed(m map[string]any) (*Sealed, bool) {
	if len(m) != 3 {
		return nil, false
	}
	enc, ok1 := m["enc"].(string)
	kid, ok2 := m["kid"].(string)
	ct, ok3 := m["ct"].(string)
	if !ok1 || !ok2 || !ok3 {
		return nil, false
	}
	return &Sealed{Enc: enc, Kid: kid, CT: ct}, true
}

// OpenEnvelope returns e's JSON with its data opened (OpenData); a record
// that is not an envelope is returned as it is.
func OpenEnvelope(ctx context.Context, keys Keys, raw json.RawMessage) (json.RawMessage, error) {
	if !bytes.Contains(raw, []byte(`"enc"`)) {
		return raw, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil || doc["data"] == nil {
		return raw, nil
	}
	data, err := OpenData(ctx, keys, doc["data"])
	if err != nil {
		return nil, err
	}
	doc["data"] = data
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("event: open personal data: %w", err)
	}
	return out, nil
}

// Value stores p in a text column of a service's table (driver.Valuer):
// the sealed object's JSON, or the clear string. A table keeping a sealed
// value needs no clearing on erasure: it reads Erased with the key gone.
func (p Personal) Value() (driver.Value, error) {
	if p.Sealed == nil {
		return p.Clear, nil
	}
	return string(p.Sealed.appendJSON(nil)), nil
}

// sealedPrefix starts the stored form of a sealed value (Value).
var sealedPrefix = []byte(`{"enc":"`)

// Scan reads a text column written by Value (sql.Scanner): a sealed
// object's JSON, or any other text in clear.
func (p *Personal) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	case nil:
	default:
		return fmt.Errorf("event: scan a personal value from %T", src)
	}
	*p = Personal{}
	if bytes.HasPrefix(b, sealedPrefix) {
		p.Sealed = &Sealed{}
		return json.Unmarshal(b, p.Sealed)
	}
	p.Clear = string(b)
	return nil
}

// SealedShown is what a display without keys shows for a sealed value.
const SealedShown = "[sealed]"

// MaskData returns data, an event's payload JSON, with every sealed value
// in it — at any depth — replaced by SealedShown: for displays that do not
// open personal data (the console's live stream). Data without a
// sealed value is returned as it is.
func MaskData(data json.RawMessage) (json.RawMessage, error) {
	return replaceSealed(data, func(*Sealed) (any, error) { return SealedShown, nil })
}
