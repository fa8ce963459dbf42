package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every endpoint secret: "whsec_" + base64 of
// secretBytes random bytes, as Standard Webhooks specifies.
const SecretPrefix = "whsec_"

const secretBytes = 32

// NewSecret returns a fresh random endpoint secret.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: new secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// secretKey decodes a secret into its HMAC key.
func secretKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("webhook: secret lacks the whsec_ prefix")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("webhook: secret is not base64: %w", err)
	}
	return key, nil
}

// Sign returns the "v1,<base64 HMAC-SHA256>" signature of a message: the
// HMAC, keyed by the secret's decoded bytes, of "{id}.{timestamp}.{body}"
// with the timestamp in Unix seconds.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// signatures is the webhook-signature header: one signature per secret,
// space-separated (during a rotation, the new secret's and the old one's).
func signatures(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, id, ts, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// MessageID is the webhook-id of an event's delivery to an endpoint: the
// same for every attempt and every replay, so receivers can use it as
// their idempotency key.
func MessageID(endpointID, eventID string) string {
	h := sha256.Sum256([]byte(endpointID + "\x00" + eventID))
	return "msg_" + hex.EncodeToString(h[:16])
}
