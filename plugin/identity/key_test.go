package identity

import "testing"

func TestKeyHashIsCanonical(t *testing.T) {
	secret := []byte("0123456789abcdef")
	a, ok1 := HashRawKey(secret, "sk-AbCdEf0123456789-3")
	b, ok2 := HashRawKey(secret, "Bearer abcdef0123456789")
	if !ok1 || !ok2 || a != b || a != Hash(secret, "abcdef0123456789") {
		t.Fatalf("HashRawKey: %q %v, %q %v", a, ok1, b, ok2)
	}
	if _, ok := HashRawKey(secret, "ábc"); ok {
		t.Fatal("a malformed key hashed")
	}
}

func TestKeyHint(t *testing.T) {
	if got := Hint("abcdefghijklmnopqrstuvwxyz"); got != "sk-abcd…wxyz" {
		t.Errorf("hint = %q", got)
	}
	if got := Hint("short"); got != "sk-…" {
		t.Errorf("short hint = %q", got)
	}
}
