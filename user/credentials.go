package user

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"

	"github.com/eventmart/eventmart"
)

// Limits of account fields.
const (
	MaxEmailLength    = 254 // bytes, RFC 5321's path limit less the brackets
	MaxNameLength     = 200 // characters
	MinPasswordLength = 8   // characters, NIST SP 800-63B's minimum
	MaxPasswordLength = 256 // characters
)

// normalizeEmail trims and lowercases an email address and checks it is a
// plain address (no display name, no comments) of at most MaxEmailLength
// bytes. Lowercasing makes "Ann@X.com" and "ann@x.com" one account.
func normalizeEmail(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	if e == "" {
		return "", eventmart.Errorf(eventmart.EINVALID, "email is required")
	}
	if len(e) > MaxEmailLength {
		return "", eventmart.Errorf(eventmart.EINVALID, "email must be at most %d characters", MaxEmailLength)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e {
		return "", eventmart.Errorf(eventmart.EINVALID, "email must be a valid address such as ann@example.com")
	}
	return e, nil
}

// normalizeName trims a display name and checks it has 1 to MaxNameLength
// characters and no control characters (names end up in email subjects).
func normalizeName(raw string) (string, error) {
	n := strings.TrimSpace(raw)
	if n == "" || utf8.RuneCountInString(n) > MaxNameLength || !utf8.ValidString(n) {
		return "", eventmart.Errorf(eventmart.EINVALID, "name must be 1-%d characters", MaxNameLength)
	}
	if strings.IndexFunc(n, unicode.IsControl) >= 0 {
		return "", eventmart.Errorf(eventmart.EINVALID, "name must not contain control characters")
	}
	return n, nil
}

// checkPassword applies the NIST SP 800-63B rules to a new password and
// returns it normalised (see normalizePassword). There are deliberately no
// composition rules (digits, symbols, cases): they make passwords harder to
// remember, not to guess. Instead very common passwords and the account's
// own email address are refused.
func checkPassword(raw, email string) (string, error) {
	if raw == "" {
		return "", eventmart.Errorf(eventmart.EINVALID, "password is required")
	}
	if !utf8.ValidString(raw) {
		return "", eventmart.Errorf(eventmart.EINVALID, "password must be valid UTF-8 text")
	}
	pw := normalizePassword(raw)
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLength {
		return "", eventmart.Errorf(eventmart.EINVALID, "password must be at least %d characters", MinPasswordLength)
	}
	if n > MaxPasswordLength {
		return "", eventmart.Errorf(eventmart.EINVALID, "password must be at most %d characters", MaxPasswordLength)
	}
	lower := strings.ToLower(pw)
	if commonPasswords[lower] {
		return "", eventmart.Errorf(eventmart.EINVALID, "password is one of the most commonly used passwords and easily guessed; choose another")
	}
	if local, _, _ := strings.Cut(email, "@"); email != "" && (lower == email || lower == local) {
		return "", eventmart.Errorf(eventmart.EINVALID, "password must not be your email address")
	}
	return pw, nil
}

// normalizePassword applies Unicode NFKC normalisation, as SP 800-63B
// recommends, so that a password typed on another keyboard (composed or
// decomposed accents, full-width digits) still matches.
func normalizePassword(pw string) string { return norm.NFKC.String(pw) }

// bcryptInput pre-hashes a password for bcrypt, which reads only the first
// 72 bytes of its input (and refuses longer ones): SHA-256 makes all of a
// 256-character password count, and base64 keeps NUL bytes out.
func bcryptInput(pw string) []byte {
	sum := sha256.Sum256([]byte(pw))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

// hashPassword returns the salted bcrypt hash of a normalised password.
func hashPassword(pw string) ([]byte, error) {
	h, err := bcrypt.GenerateFromPassword(bcryptInput(pw), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("user: hash password: %w", err)
	}
	return h, nil
}

// passwordMatches reports whether raw is the password of hash. It takes
// bcrypt's time whatever the answer.
func passwordMatches(hash []byte, raw string) bool {
	return bcrypt.CompareHashAndPassword(hash, bcryptInput(normalizePassword(raw))) == nil
}

// commonPasswords is a small blocklist of the most used passwords of at
// least MinPasswordLength characters (shorter ones fail the length rule),
// after public lists of leaked passwords. Compared in lower case.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Fields(`
		password password1 password12 password123 password1234 passw0rd p@ssw0rd p@ssword
		12345678 123456789 1234567890 0123456789 12341234 11111111 00000000 88888888
		87654321 987654321 11223344 12344321 123123123 12121212 147258369 123456789a
		qwertyuiop qwertyui qwerty123 qwerty12 qwerty1234 1q2w3e4r 1q2w3e4r5t 1qaz2wsx
		zaq12wsx q1w2e3r4 q1w2e3r4t5 asdfghjkl asdfasdf zxcvbnm1 qazwsxedc abcd1234
		abc12345 abcdefgh iloveyou iloveyou1 sunshine princess football baseball
		superman starwars welcome1 welcome123 trustno1 letmein1 letmein123 whatever
		dragon123 monkey123 master123 michael1 jennifer computer internet corvette
		mercedes liverpool chelsea1 arsenal1 changeme changeme1 administrator admin123
		admin1234 secret123 default1 testtest test1234 guest123 unknown1 1234qwer
		eventmart eventmart1 eventmart123`) {
		m[p] = true
	}
	return m
}()
