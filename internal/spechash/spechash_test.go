package spechash

import "testing"

func TestOf(t *testing.T) {
	type spec struct{ Env []string }
	a := Of("uid-1", spec{Env: []string{"A=1"}})
	if len(a) != 16 || Of("uid-1", spec{Env: []string{"A=1"}}) != a {
		t.Fatalf("hash %q is not a stable 16-digit value", a)
	}
	if Of("uid-2", spec{Env: []string{"A=1"}}) == a {
		t.Error("the key does not change the hash")
	}
	if Of("uid-1", spec{Env: []string{"A=2"}}) == a {
		t.Error("a value does not change the hash")
	}
}
