package event

import (
	"context"
	"encoding/json"
	"fmt"
)

// PersonalAddress is a postal address in an event or a service's table:
// in JSON either an Address object (a value from before encryption) or a
// Sealed object (SealV1JSON) holding the whole address — one AES-GCM
// operation per address. Producers set Sealed (SealAddress); readers call
// Open.
type PersonalAddress struct {
	Clear  Address
	Sealed *Sealed
}

// PlainAddress is a PersonalAddress holding a in clear: upcasts of prior
// versions, and addresses of no account.
func PlainAddress(a Address) PersonalAddress { return PersonalAddress{Clear: a} }

// ErasedAddress is what a sealed address reads as once its user's key is
// destroyed: every field Erased.
var ErasedAddress = Address{Name: Erased, Line1: Erased, City: Erased, PostalCode: Erased, Country: Erased}

// SealAddress returns a sealed with key, the key of user userID.
func SealAddress(key []byte, userID string, a Address) (PersonalAddress, error) {
	clear, err := json.Marshal(a)
	if err != nil {
		return PersonalAddress{}, fmt.Errorf("event: seal an address: %w", err)
	}
	s, err := sealBytes(key, SealV1JSON, userID, clear)
	if err != nil {
		return PersonalAddress{}, err
	}
	return PersonalAddress{Sealed: s}, nil
}

// MarshalJSON writes the sealed object, or the clear address.
func (p PersonalAddress) MarshalJSON() ([]byte, error) {
	if p.Sealed != nil {
		return p.Sealed.appendJSON(nil), nil
	}
	return json.Marshal(p.Clear)
}

// UnmarshalJSON reads an address or a sealed object (its "enc" member).
func (p *PersonalAddress) UnmarshalJSON(b []byte) error {
	*p = PersonalAddress{}
	var both struct {
		Sealed
		Address
	}
	if err := json.Unmarshal(b, &both); err != nil {
		return err
	}
	if both.Enc != "" {
		s := both.Sealed
		p.Sealed = &s
		return nil
	}
	p.Clear = both.Address
	return nil
}

// Open returns p's clear address: Clear, or the sealed address opened with
// its user's key from keys — ErasedAddress if that key is destroyed.
func (p PersonalAddress) Open(ctx context.Context, keys Keys) (Address, error) {
	if p.Sealed == nil {
		return p.Clear, nil
	}
	clear, err := Personal{Sealed: p.Sealed}.Open(ctx, keys)
	if err != nil {
		return Address{}, err
	}
	if clear == Erased {
		return ErasedAddress, nil
	}
	var a Address
	if err := json.Unmarshal([]byte(clear), &a); err != nil {
		return Address{}, fmt.Errorf("event: open the address of user %s: %w", p.Sealed.Kid, err)
	}
	return a, nil
}
