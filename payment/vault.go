package payment

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/eventmart/eventmart/internal/fsperm"
	"github.com/eventmart/eventmart/internal/settings"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// The card vault keeps numbers encrypted with AES-256-GCM, so that a copy
// of the database (a backup, a stolen disk) holds no card number without
// the key. Keys come from EVENTMART_CARD_KEYS ("ID:HEX,…") or, unset, from
// the file card-vault.keys in the data directory, generated at the first
// start (one "ID HEX" line per key). The last key encrypts; the others
// only decrypt what they encrypted. Rotation: add a key at the end and
// restart — at start the service re-encrypts with the last key every card
// stored under another key or, from a release before encryption, in clear.
// Then an old key may be dropped, except the first: it also keys the
// fingerprints (see vault.fingerprint).

// VaultKeysFile is the key file in the data directory.
const VaultKeysFile = "card-vault.keys"

// sealedPrefix starts an encrypted number: "enc1:<key id>:<base64 nonce‖ciphertext>".
// A stored number without it is a clear one from before encryption.
const sealedPrefix = "enc1:"

type vaultKey struct {
	id   string
	aead cipher.AEAD
}

type vault struct {
	keys  []vaultKey // the last encrypts
	fpKey []byte     // HMAC key of fingerprints
}

// loadVault returns the vault of the keys EVENTMART_CARD_KEYS names, or of
// those in dataDir's key file, generating the file if there is none.
func loadVault(values *settings.Values, dataDir string) (*vault, error) {
	var pairs [][2]string
	if list := values.List(settings.CardKeys); len(list) > 0 {
		for _, item := range list {
			id, key, ok := strings.Cut(item, ":")
			if !ok {
				return nil, fmt.Errorf("payment: %s: %q is not ID:HEX", settings.CardKeys.Name, item)
			}
			pairs = append(pairs, [2]string{id, key})
		}
	} else {
		if dataDir == "" {
			return nil, fmt.Errorf("payment: no card vault key: set %s or a data directory", settings.CardKeys.Name)
		}
		var err error
		if pairs, err = keysFromFile(filepath.Join(dataDir, VaultKeysFile)); err != nil {
			return nil, err
		}
	}
	return newVault(pairs)
}

func newVault(pairs [][2]string) (*vault, error) {
	v := &vault{}
	seen := map[string]bool{}
	for _, p := range pairs {
		id, hexKey := strings.TrimSpace(p[0]), strings.TrimSpace(p[1])
		key, err := hex.DecodeString(hexKey)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("payment: card vault key %q: want 64 hex digits (32 bytes)", id)
		}
		if id == "" || strings.ContainsAny(id, ": \t") || seen[id] {
			return nil, fmt.Errorf("payment: card vault key id %q: want a unique id without ':' or spaces", id)
		}
		seen[id] = true
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("payment: card vault key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("payment: card vault key %q: %w", id, err)
		}
		if v.fpKey == nil {
			fp := sha256.Sum256(append([]byte("eventmart card fingerprint\x00"), key...))
			v.fpKey = fp[:]
		}
		v.keys = append(v.keys, vaultKey{id: id, aead: aead})
	}
	if len(v.keys) == 0 {
		return nil, errors.New("payment: no card vault key")
	}
	return v, nil
}

// keysFromFile reads the key file at path, creating it (mode 0600) with
// one random key if it does not exist.
func keysFromFile(path string) ([][2]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		rand.Read(key)
		b = []byte("# Eventmart card vault keys, one \"ID HEX\" line each; the last encrypts (docs/security.md).\nk1 " + hex.EncodeToString(key) + "\n")
		if err := fsperm.MkdirAll(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("payment: %w", err)
		}
		// Written aside and linked into place: an instance starting at
		// the same time reads either no file or the whole of it.
		tmp, err := os.CreateTemp(filepath.Dir(path), VaultKeysFile+".*")
		if err != nil {
			return nil, fmt.Errorf("payment: %w", err)
		}
		defer os.Remove(tmp.Name())
		_, err = tmp.Write(b)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("payment: write %s: %w", path, err)
		}
		if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) { // another instance won the race
			return keysFromFile(path)
		} else if err != nil {
			return nil, fmt.Errorf("payment: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("payment: %w", err)
	}
	var pairs [][2]string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("payment: %s: %q is not \"ID HEX\"", path, line)
		}
		pairs = append(pairs, [2]string{f[0], f[1]})
	}
	return pairs, nil
}

// seal encrypts number with the current key. The token is the additional
// data: a sealed number copied to another card's row does not open.
func (v *vault) seal(token, number string) string {
	k := v.keys[len(v.keys)-1]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(number)+k.aead.Overhead())
	rand.Read(nonce)
	sealed := k.aead.Seal(nonce, nonce, []byte(number), []byte(token))
	return sealedPrefix + k.id + ":" + base64.RawStdEncoding.EncodeToString(sealed)
}

// open returns the number sealed in stored; a clear number (stored before
// encryption) is returned as is.
func (v *vault) open(token, stored string) (string, error) {
	if v == nil {
		return "", errors.New("payment: no card vault (a Service made by New alone)")
	}
	rest, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, nil
	}
	id, text, _ := strings.Cut(rest, ":")
	for _, k := range v.keys {
		if k.id != id {
			continue
		}
		b, err := base64.RawStdEncoding.DecodeString(text)
		if err != nil || len(b) < k.aead.NonceSize() {
			return "", fmt.Errorf("payment: card %s: malformed sealed number", token)
		}
		n := k.aead.NonceSize()
		plain, err := k.aead.Open(nil, b[:n], b[n:], []byte(token))
		if err != nil {
			return "", fmt.Errorf("payment: card %s: the number does not decrypt with key %q", token, id)
		}
		return string(plain), nil
	}
	return "", fmt.Errorf("payment: card %s: sealed with key %q, which the vault does not have (%s)", token, id, settings.CardKeys.Name)
}

// current reports whether stored is sealed with the current key.
func (v *vault) current(stored string) bool {
	return strings.HasPrefix(stored, sealedPrefix+v.keys[len(v.keys)-1].id+":")
}

// fingerprint identifies a card number without revealing it, the same for
// the same number whichever key sealed it: an HMAC keyed by the first
// key, so that it cannot be reversed by hashing every possible number.
func (v *vault) fingerprint(number string) string {
	m := hmac.New(sha256.New, v.fpKey)
	m.Write([]byte(number))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// sealCards seals with the current key every card stored in clear or
// under another key, and returns how many it changed. The update names the
// value it read, so instances doing it at once do not undo each other.
func sealCards(ctx context.Context, db *sqldb.DB, v *vault) (int, error) {
	type row struct{ token, number string }
	var todo []row
	rows, err := db.Query(ctx, `SELECT token, number FROM cards`)
	if err != nil {
		return 0, fmt.Errorf("payment: read cards: %w", err)
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.token, &r.number); err != nil {
			rows.Close()
			return 0, fmt.Errorf("payment: read cards: %w", err)
		}
		if !v.current(r.number) {
			todo = append(todo, r)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("payment: read cards: %w", err)
	}
	for _, r := range todo {
		number, err := v.open(r.token, r.number)
		if err != nil {
			return 0, err
		}
		if _, err := db.Exec(ctx, `UPDATE cards SET number = ?, fingerprint = ? WHERE token = ? AND number = ?`,
			v.seal(r.token, number), v.fingerprint(number), r.token, r.number); err != nil {
			return 0, fmt.Errorf("payment: seal card %s: %w", r.token, err)
		}
	}
	return len(todo), nil
}
