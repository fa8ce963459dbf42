package payment

import (
	"container/list"
	"context"
	"sync"

	"github.com/google/uuid"
)

// A customer pays almost always with the same card, and every order
// vaults its card again (order's POST /orders calls POST /payments/cards).
// So vaulting a card the customer has vaulted before answers the card
// they have, without a write: from memory (cardMemory), else from the
// database (one indexed read: store.userCard); only a new card is
// inserted. A card is the same when its number's fingerprint is (an HMAC
// keyed by the first vault key: vault.fingerprint), so key rotation keeps
// finding it; the number itself is neither compared nor remembered.

// vaultCard returns userID's card of number, and whether it is new: the
// one vaulted before if there is one, else a card stored now. Two
// vaultings of the same new card at once (two instances, or two requests)
// answer the same card: the unique index on (user_id, fingerprint,
// duplicate) lets one insert in, and the other reads it (store.insertCard).
func (s *Service) vaultCard(ctx context.Context, userID, number string) (Card, bool, error) {
	fp := s.vault.fingerprint(number)
	if c, ok := s.cards.get(userID, fp); ok {
		return c, false, nil
	}
	c, err := s.store.userCard(ctx, userID, fp)
	if err != nil {
		return Card{}, false, err
	}
	if c != nil {
		s.cards.put(userID, fp, *c)
		return *c, false, nil
	}
	card, created, err := s.store.insertCard(ctx, s.newCard(userID, number, fp), s.d.Now().UTC())
	if err != nil {
		return Card{}, false, err
	}
	s.cards.put(userID, fp, card)
	return card, created, nil
}

// newCard returns a new card of userID's number, whose fingerprint is fp,
// under a new token, its number sealed.
func (s *Service) newCard(userID, number, fp string) *vaultedCard {
	token := "tok_" + uuid.NewString()
	return &vaultedCard{
		Card:   Card{Token: token, Last4: number[len(number)-4:], Brand: cardBrand(number)},
		UserID: userID, Number: s.vault.seal(token, number), Fingerprint: fp,
	}
}

// cardMemorySize bounds cardMemory: 4096 cards of the customers who
// vaulted last, about 250 bytes each (ids, fingerprint, token), ~1 MB.
const cardMemorySize = 4096

// cardMemory remembers, for the customers who vaulted a card last, their
// card by (user id, fingerprint): its token, last four digits and brand —
// what the answer shows, never the number. An entry is what the database
// held (a row inserted or read); of a card row only the sealed number
// ever changes (key rotation: sealCards) and Eventmart deletes none, so it
// stays true.
// Should a row go anyway (deleted by hand), the charge that finds its
// token missing makes the instance forget it (forgetToken), and a restart
// forgets everything. It holds up to cardMemorySize entries, forgetting
// the least recently used first. Safe for concurrent use.
type cardMemory struct {
	size int
	mu   sync.Mutex
	byID map[cardKey]*list.Element // of *rememberedCard
	lru  list.List                 // most recently used first
}

type cardKey struct{ userID, fingerprint string }

type rememberedCard struct {
	key  cardKey
	card Card
}

func newCardMemory(size int) *cardMemory {
	return &cardMemory{size: size, byID: map[cardKey]*list.Element{}}
}

// get returns userID's remembered card of fingerprint fp.
func (m *cardMemory) get(userID, fp string) (Card, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byID[cardKey{userID, fp}]
	if !ok {
		return Card{}, false
	}
	m.lru.MoveToFront(el)
	return el.Value.(*rememberedCard).card, true
}

// put remembers c as userID's card of fingerprint fp.
func (m *cardMemory) put(userID, fp string, c Card) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := cardKey{userID, fp}
	if el, ok := m.byID[k]; ok {
		el.Value.(*rememberedCard).card = c
		m.lru.MoveToFront(el)
		return
	}
	m.byID[k] = m.lru.PushFront(&rememberedCard{key: k, card: c})
	for len(m.byID) > m.size {
		last := m.lru.Back()
		m.lru.Remove(last)
		delete(m.byID, last.Value.(*rememberedCard).key)
	}
}

// forgetToken forgets the card of token, whose row is gone. A scan: it
// runs only when a charge finds no card.
func (m *cardMemory) forgetToken(token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for el := m.lru.Front(); el != nil; el = el.Next() {
		if r := el.Value.(*rememberedCard); r.card.Token == token {
			m.lru.Remove(el)
			delete(m.byID, r.key)
			return
		}
	}
}

// len returns how many cards m remembers.
func (m *cardMemory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byID)
}
