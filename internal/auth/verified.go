package auth

import "sync"

// verifiedCap bounds the tokens verifiedTokens remembers: two generations
// of at most this many each (~1 KiB per token with its claims, so ≤ ~8 MiB).
const verifiedCap = 4096

// verifiedTokens remembers the claims of tokens whose signature has been
// checked. Every request of a session carries the same access token, and
// in one process it is verified by the gateway and again by each service
// a request reaches; remembered, a token costs a map lookup and the time
// checks (expiry, issuer) instead of two base64 decodes, a JSON decode and
// an HMAC. What is remembered was signed with the secret, which does not
// change in a process's life; revocation is checked on every call anyway.
type verifiedTokens struct {
	mu   sync.Mutex
	cur  map[string]*claims
	prev map[string]*claims
}

// get returns the claims of token if its signature was verified.
func (v *verifiedTokens) get(token string) (*claims, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.cur[token]
	if !ok {
		if c, ok = v.prev[token]; ok {
			v.put(token, c) // in use: keep it through the next rotation
		}
	}
	return c, ok
}

// add remembers the claims of token, whose signature was just verified.
// The caller must not modify c afterwards.
func (v *verifiedTokens) add(token string, c *claims) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.put(token, c)
}

func (v *verifiedTokens) put(token string, c *claims) {
	if len(v.cur) >= verifiedCap {
		v.prev, v.cur = v.cur, nil // the least recently used generation goes
	}
	if v.cur == nil {
		v.cur = make(map[string]*claims, 64)
	}
	v.cur[token] = c
}
