package user

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
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

// normalizeEmail trims, lowercases and NFC-normalises an email address and
// checks it is a plain address (no display name, no comments) of at most
// MaxEmailLength bytes, without invisible characters and without a part
// that mixes scripts (see checkScripts). Lowercasing makes "Ann@X.com" and
// "ann@x.com" one account; NFC makes "café" typed composed or decomposed
// one account.
func normalizeEmail(raw string) (string, error) {
	e := loginEmail(raw)
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
	if !utf8.ValidString(e) || strings.IndexFunc(e, invisible) >= 0 {
		return "", eventmart.Errorf(eventmart.EINVALID, "email must not contain invisible, space or control characters")
	}
	local, domain, _ := strings.Cut(e, "@")
	for _, part := range append([]string{local}, strings.Split(domain, ".")...) {
		if !singleScript(part) {
			return "", eventmart.Errorf(eventmart.EINVALID, "email must not mix writing systems (such as Latin and Cyrillic) within a part: look-alike addresses are refused")
		}
	}
	return e, nil
}

// loginEmail is the form of a typed email that accounts are looked up by:
// trimmed, lower-cased, NFC. It checks nothing.
func loginEmail(raw string) string {
	return norm.NFC.String(strings.ToLower(strings.TrimSpace(raw)))
}

// invisible reports whether r shows nothing or only space: controls,
// format characters (zero-width space and joiners, bidi controls), every
// kind of space, variation selectors and the other default-ignorable code
// points (Hangul fillers among them).
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zs, unicode.Zl, unicode.Zp,
		unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) || r == '\u2800' // braille blank
}

// scriptTables are the scripts singleScript tells apart: every script
// Unicode names, less Common and Inherited (digits, punctuation, combining
// marks), which go with any.
var scriptTables = func() map[string]*unicode.RangeTable {
	m := map[string]*unicode.RangeTable{}
	for name, t := range unicode.Scripts {
		if name != "Common" && name != "Inherited" {
			m[name] = t
		}
	}
	return m
}()

// allowedMixes are the combinations of scripts that one word of a real
// language uses (Unicode TS #39's "highly restrictive" level).
var allowedMixes = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// singleScript reports whether s is written in one script, or in one of
// allowedMixes, the way a look-alike ("pаypal" with a Cyrillic "а") is not.
func singleScript(s string) bool {
	var seen []string
	for _, r := range s {
		if r < utf8.RuneSelf {
			if ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') {
				seen = addScript(seen, "Latin")
			}
			continue
		}
		for name, t := range scriptTables {
			if unicode.Is(t, r) {
				seen = addScript(seen, name)
				break
			}
		}
	}
	if len(seen) <= 1 {
		return true
	}
next:
	for _, mix := range allowedMixes {
		for _, sc := range seen {
			if !slices.Contains(mix, sc) {
				continue next
			}
		}
		return true
	}
	return false
}

func addScript(seen []string, name string) []string {
	if slices.Contains(seen, name) {
		return seen
	}
	return append(seen, name)
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

// MinPasswordScore is the least zxcvbn score (0-4) a new password needs:
// 3 is "safely unguessable", about 10^8 guesses or more.
const MinPasswordScore = 3

// strengthPrefix is how many characters of a password the strength
// estimate reads: its cost grows fast with the length (a 256-character
// password takes half a second), and an anonymous registration must not
// buy that much CPU. The first 64 characters must be strong enough.
const strengthPrefix = 64

// checkPassword applies the NIST SP 800-63B rules to a new password and
// returns it normalised (see normalizePassword). There are deliberately no
// composition rules (digits, symbols, cases): they make passwords harder to
// remember, not to guess. Instead very common passwords, the account's own
// email address and names, and passwords that zxcvbn (Dropbox's strength
// estimate: dictionaries, keyboard patterns, repeats, sequences, dates)
// scores below MinPasswordScore are refused.
func checkPassword(raw, email string, names ...string) (string, error) {
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
	estimated := pw
	if n > strengthPrefix {
		estimated = string([]rune(pw)[:strengthPrefix])
	}
	local, _, _ := strings.Cut(email, "@")
	if r := zxcvbn.PasswordStrength(estimated, append([]string{email, local, "eventmart"}, names...)); r.Score < MinPasswordScore {
		return "", eventmart.Errorf(eventmart.EINVALID, "password is too easy to guess (repeated or sequential characters, a keyboard pattern, common words or your own details); a few unrelated words make a strong one")
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
