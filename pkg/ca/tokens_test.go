package ca

import "testing"

func TestJoinTokens(t *testing.T) {
	a, b := NewJoinToken("worker"), NewJoinToken("worker")
	if a == b {
		t.Fatal("two tokens are equal")
	}
	cases := []struct{ token, role string }{
		{a, "worker"},
		{NewJoinToken("manager"), "manager"},
		{"MKTKN-1-admin-00", ""},
		{"SWMTKN-1-worker-00", ""},
		{"", ""},
	}
	for _, c := range cases {
		if got := TokenRole(c.token); got != c.role {
			t.Errorf("TokenRole(%q) = %q, want %q", c.token, got, c.role)
		}
	}
}
