package user

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Login throttling, after OWASP's authentication cheat sheet: failed logins
// are counted per account and per client address; past a few free
// failures each further one makes the key wait twice as long before the
// next attempt is even checked (429 with Retry-After), up to a ceiling.
// No key is ever locked for good, and an account's ceiling is short, so
// an attacker cannot keep a real user out for long; the address counter,
// which a success does not reset, stops one client from guessing across
// many accounts. The counters live in the user service's database, shared
// by its instances; a key with no failure for throttleForget starts over.
//
// The account key is the typed email whether or not it has an account, so
// throttling does not tell which emails exist.
type throttleRule struct {
	free      int           // failures allowed without a delay
	base, max time.Duration // the first delay, doubled per failure up to max
}

var (
	accountRule = throttleRule{free: 5, base: time.Second, max: time.Minute}
	addressRule = throttleRule{free: 20, base: time.Second, max: 15 * time.Minute}
)

// throttleForget is how long after its last failure a key is forgotten.
const throttleForget = 15 * time.Minute

type throttle struct {
	db      *sqldb.DB
	trusted []netip.Prefix // proxies whose X-Forwarded-For is believed
	pruned  atomic.Int64   // Unix ms of the last pruning
}

// throttleKey is one counter: an account or an address, and its rule.
type throttleKey struct {
	key  string
	rule throttleRule
}

// loginKeys are the counters of a login for the typed email by r's client.
func (t *throttle) loginKeys(r *http.Request, typedEmail string) []throttleKey {
	return []throttleKey{accountKey(typedEmail), {key: "address:" + t.clientAddress(r), rule: addressRule}}
}

// accountKey is the counter of the account named by a typed email, hashed:
// a constant size whatever was typed.
func accountKey(typedEmail string) throttleKey {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(typedEmail))))
	return throttleKey{key: "account:" + hex.EncodeToString(sum[:]), rule: accountRule}
}

// clientAddress is the address of r's client: the peer, or, when the peer
// is a trusted proxy, the rightmost address of X-Forwarded-For that is not
// a trusted proxy (the ones left of it could have been made up by the
// client). IPv6 clients count by /64, what one subscriber usually gets.
func (t *throttle) clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "unknown"
	}
	addr = addr.Unmap()
	if t.isTrusted(addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			addr = a.Unmap()
			if !t.isTrusted(addr) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func (t *throttle) isTrusted(a netip.Addr) bool {
	for _, p := range t.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseTrusted parses EVENTMART_TRUSTED_PROXIES: CIDR prefixes or single
// addresses.
func parseTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("user: EVENTMART_TRUSTED_PROXIES: %q is neither an address nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// wait returns how long the longest-blocked of keys must still wait (0:
// none is blocked), and whether this is the first refusal of that block,
// which is the one recorded in the audit trail (one record per block, not
// per refused request).
func (t *throttle) wait(ctx context.Context, keys []throttleKey, now time.Time) (time.Duration, bool, error) {
	var longest time.Duration
	var blockedKey string
	for _, k := range keys {
		var until int64
		err := t.db.QueryRow(ctx, `SELECT blocked_until FROM login_throttle WHERE throttle_key = ?`, k.key).Scan(&until)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, false, fmt.Errorf("user: read login throttle: %w", err)
		}
		if d := time.UnixMilli(until).Sub(now); d > longest {
			longest, blockedKey = d, k.key
		}
	}
	if longest <= 0 {
		return 0, false, nil
	}
	res, err := t.db.Exec(ctx, `UPDATE login_throttle SET reported = 1 WHERE throttle_key = ? AND reported = 0`, blockedKey)
	if err != nil {
		return 0, false, fmt.Errorf("user: update login throttle: %w", err)
	}
	n, _ := res.RowsAffected()
	return longest, n == 1, nil
}

// failed counts a failed attempt against keys and returns how long the
// next attempt must wait. The count is incremented in the database
// (concurrent failures on several instances all count: an attacker gains
// nothing by sending them in parallel), and a wait is only ever extended.
func (t *throttle) failed(ctx context.Context, keys []throttleKey, now time.Time) (time.Duration, error) {
	var longest time.Duration
	err := t.db.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, k := range keys {
			var failures int64
			err := tx.QueryRow(ctx, `INSERT INTO login_throttle (throttle_key, failures, last_at, blocked_until, reported) VALUES (?, 1, ?, 0, 0)
				ON CONFLICT (throttle_key) DO UPDATE SET
					failures = CASE WHEN login_throttle.last_at < ? THEN 1 ELSE login_throttle.failures + 1 END,
					last_at = excluded.last_at
				RETURNING failures`,
				k.key, now.UnixMilli(), now.Add(-throttleForget).UnixMilli()).Scan(&failures)
			if err != nil {
				return fmt.Errorf("user: count a failed login: %w", err)
			}
			d := k.rule.delay(int(failures))
			if d <= 0 {
				continue
			}
			longest = max(longest, d)
			until := now.Add(d).UnixMilli()
			if _, err := tx.Exec(ctx, `UPDATE login_throttle SET blocked_until = ?, reported = 0 WHERE throttle_key = ? AND blocked_until < ?`,
				until, k.key, until); err != nil {
				return fmt.Errorf("user: update login throttle: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	t.prune(ctx, now)
	return longest, nil
}

// succeeded forgets the failures of the account key: a user who got in is
// not slowed down by the mistakes before. The address counter stays, so an
// attacker cannot reset it by logging in to an account of their own.
func (t *throttle) succeeded(ctx context.Context, account throttleKey) error {
	if _, err := t.db.Exec(ctx, `DELETE FROM login_throttle WHERE throttle_key = ?`, account.key); err != nil {
		return fmt.Errorf("user: reset login throttle: %w", err)
	}
	return nil
}

// prune deletes forgotten keys, at most once a minute per instance.
func (t *throttle) prune(ctx context.Context, now time.Time) {
	last := t.pruned.Load()
	if now.UnixMilli()-last < time.Minute.Milliseconds() || !t.pruned.CompareAndSwap(last, now.UnixMilli()) {
		return
	}
	cutoff := now.Add(-throttleForget).UnixMilli()
	if _, err := t.db.Exec(ctx, `DELETE FROM login_throttle WHERE last_at < ? AND blocked_until < ?`, cutoff, now.UnixMilli()); err != nil {
		httpx.Logger(ctx).Warn("pruning the login throttle", "error", err)
	}
}

// delay is the wait after the n-th failure in a row: none for the first
// free ones, then base, doubled each time, at most max.
func (r throttleRule) delay(n int) time.Duration {
	if n <= r.free {
		return 0
	}
	d := r.base
	for i := r.free + 1; i < n && d < r.max; i++ {
		d *= 2
	}
	return min(d, r.max)
}

// retryAfter is the Retry-After value of a wait: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// throttled answers 429 with Retry-After, and reports true, when one of
// keys must still wait. The first refusal of a block is recorded as
// LoginFailed with reason "throttled". A failure to read the counters lets
// the attempt through (logged): throttling must not become an outage.
func (s *Service) throttled(w http.ResponseWriter, r *http.Request, keys []throttleKey, email string) bool {
	wait, first, err := s.throttle.wait(r.Context(), keys, s.d.Now())
	if err != nil {
		httpx.Logger(r.Context()).Error("reading the login throttle", "error", err)
		return false
	}
	if wait <= 0 {
		return false
	}
	if first {
		s.recordLoginFailed(r, email, "throttled")
	}
	w.Header().Set("Retry-After", retryAfter(wait))
	var body httpx.ErrorBody
	body.Error.Code = "too_many_requests"
	body.Error.Message = "too many failed attempts; try again in " + retryAfter(wait) + " s"
	httpx.JSON(w, http.StatusTooManyRequests, body)
	return true
}

// countFailure counts a failed attempt against keys; an error is logged.
func (s *Service) countFailure(r *http.Request, keys []throttleKey) {
	if _, err := s.throttle.failed(r.Context(), keys, s.d.Now()); err != nil {
		httpx.Logger(r.Context()).Error("counting a failed login", "error", err)
	}
}

// currentPasswordMatches checks the current password given to change the
// email or password of cur, throttled as logins of that account are (a
// stolen token must not be a way to guess the password). It answers the
// request and reports false when the change must not go ahead.
func (s *Service) currentPasswordMatches(w http.ResponseWriter, r *http.Request, cur *User, given *string) bool {
	keys := []throttleKey{accountKey(cur.Email), {key: "address:" + s.throttle.clientAddress(r), rule: addressRule}}
	if s.throttled(w, r, keys, cur.Email) {
		return false
	}
	if given == nil || *given == "" {
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "currentPassword is required to change the email or the password"))
		return false
	}
	if !passwordMatches([]byte(cur.passwordHash), *given) {
		s.countFailure(r, keys)
		s.recordLoginFailed(r, cur.Email, "wrong-current-password")
		httpx.Error(w, r, eventmart.Errorf(eventmart.EFORBIDDEN, "currentPassword is not the account's password"))
		return false
	}
	return true
}
