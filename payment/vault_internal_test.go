package payment

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestVaultSealAndOpen(t *testing.T) {
	k := func(b byte) string { return strings.Repeat(string("0123456789abcdef"[b]), 64) }
	old, err := newVault([][2]string{{"a", k(1)}})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := newVault([][2]string{{"a", k(1)}, {"b", k(2)}})
	if err != nil {
		t.Fatal(err)
	}
	sealed := old.seal("tok_1", "4242424242424242")
	if strings.Contains(sealed, "4242") || old.seal("tok_1", "4242424242424242") == sealed {
		t.Errorf("sealed %q: shows the number, or the nonce is not random", sealed)
	}
	if n, err := rotated.open("tok_1", sealed); err != nil || n != "4242424242424242" {
		t.Errorf("an older key's card: %q %v", n, err)
	}
	if rotated.current(sealed) || !rotated.current(rotated.seal("tok_1", "1")) {
		t.Error("current: wrong key judged current")
	}
	if _, err := old.open("tok_2", sealed); err == nil {
		t.Error("a sealed number opened under another card's token")
	}
	if _, err := old.open("tok_1", rotated.seal("tok_1", "4242424242424242")); err == nil || !strings.Contains(err.Error(), `key "b"`) {
		t.Errorf("a card sealed with a key the vault lacks: %v", err)
	}
	if n, _ := old.open("tok_1", "4242424242424242"); n != "4242424242424242" {
		t.Error("a clear number of an older release is not read as is")
	}
	if old.fingerprint("4242424242424242") != rotated.fingerprint("4242424242424242") || old.fingerprint("1") == old.fingerprint("2") {
		t.Error("fingerprints: not stable across rotation, or not distinct")
	}
	for _, bad := range [][][2]string{{{"a", "00"}}, {{"a:b", k(1)}}, {{"a", k(1)}, {"a", k(2)}}, {}} {
		if _, err := newVault(bad); err == nil {
			t.Errorf("keys %v accepted", bad)
		}
	}
}

// Instances starting at once with no key file agree on one key.
func TestVaultKeyFileCreatedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", VaultKeysFile)
	var wg sync.WaitGroup
	keys := make([]string, 8)
	for i := range keys {
		wg.Go(func() {
			pairs, err := keysFromFile(path)
			if err != nil || len(pairs) != 1 {
				t.Errorf("instance %d: %v %v", i, pairs, err)
				return
			}
			keys[i] = pairs[0][1]
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k != keys[0] {
			t.Fatalf("instances read different keys: %v", keys)
		}
	}
}
