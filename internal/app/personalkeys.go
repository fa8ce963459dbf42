package app

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/user"
)

// personalKeys is the event.Keys every service of the process is handed
// (service.Deps.Keys): the keys that open the personal fields of events
// are the user service's. When it runs in this process they are read from
// it directly; otherwise from its internal API (GET
// /api/v1/users/{id}/personal-key) with a service token. Either way
// they are cached for keyCacheTTL, at most keyCacheMax users, so that the
// notification of every order costs no read. Forget drops a user: the user
// service calls it when it erases one (so an erasure is seen at once in
// its process), the other services on PersonalDataErased; a process that
// handles neither sees an erasure within keyCacheTTL.
type personalKeys struct {
	a   *App
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedKey
}

type cachedKey struct {
	key []byte // nil: erased
	at  time.Time
}

// Bounds of the cache of keys fetched from another process.
const (
	keyCacheTTL = time.Minute
	keyCacheMax = 10000
)

// PersonalKey returns userID's key (event.Keys).
func (k *personalKeys) PersonalKey(ctx context.Context, userID string) ([]byte, error) {
	now := k.now()
	k.mu.Lock()
	c, ok := k.cache[userID]
	k.mu.Unlock()
	if !ok || now.Sub(c.at) >= keyCacheTTL {
		key, err := k.fetchLocal(ctx, userID)
		if err != nil {
			return nil, err
		}
		c = cachedKey{key: key, at: now}
		k.mu.Lock()
		if len(k.cache) >= keyCacheMax {
			clear(k.cache)
		}
		k.cache[userID] = c
		k.mu.Unlock()
	}
	if c.key == nil {
		return nil, fmt.Errorf("user %s: %w", userID, event.ErrErased)
	}
	return c.key, nil
}

// Forget drops userID's cached key: its personal data was erased.
func (k *personalKeys) Forget(userID string) {
	k.mu.Lock()
	delete(k.cache, userID)
	k.mu.Unlock()
}

// fetchLocal reads userID's key from the user service when it runs in this
// process, else fetches it; nil for an erased user.
func (k *personalKeys) fetchLocal(ctx context.Context, userID string) ([]byte, error) {
	local, ok := k.a.services[user.Name].(event.Keys)
	if !ok {
		return k.fetch(ctx, userID)
	}
	key, err := local.PersonalKey(ctx, userID)
	if errors.Is(err, event.ErrErased) {
		return nil, nil
	}
	return key, err
}

// fetch asks the user service's process for userID's key; nil for an
// erased user.
func (k *personalKeys) fetch(ctx context.Context, userID string) ([]byte, error) {
	if k.a.cfg.Tokens == nil {
		return nil, fmt.Errorf("app: the key of user %s: no token issuer to call the user service with", userID)
	}
	tok, _, err := k.a.cfg.Tokens.Issue(auth.Identity{UserID: "eventmart", Role: auth.RoleService, SessionID: "service"})
	if err != nil {
		return nil, fmt.Errorf("app: the key of user %s: %w", userID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.a.baseURL(user.Name)+"/api/v1/users/"+url.PathEscape(userID)+"/personal-key", nil)
	if err != nil {
		return nil, fmt.Errorf("app: the key of user %s: %w", userID, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := k.a.client(user.Name).Do(req)
	if err != nil {
		return nil, eventmart.Errorf(eventmart.EUNAVAILABLE, "the user service is unavailable: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	var body struct {
		Key string `json:"key"`
	}
	if resp.StatusCode != http.StatusOK {
		var eb httpx.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		return nil, eventmart.Errorf(eventmart.EUNAVAILABLE, "the user service answered %s to a key request: %s", resp.Status, eb.Error.Message)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("app: the key of user %s: %w", userID, err)
	}
	key, err := hex.DecodeString(body.Key)
	if err != nil || len(key) != event.PersonalKeySize {
		return nil, fmt.Errorf("app: the key of user %s: malformed answer", userID)
	}
	return key, nil
}
