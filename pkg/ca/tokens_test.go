package ca

import (
	"errors"
	"strings"
	"testing"
)

func TestJoinTokens(t *testing.T) {
	root := []byte("root certificate DER")
	a, b := NewJoinToken(RoleWorker, root), NewJoinToken(RoleWorker, root)
	if a == b {
		t.Fatal("two tokens are equal")
	}
	cases := []struct {
		name, token, role, err string
	}{
		{"worker", a, RoleWorker, ""},
		{"manager", NewJoinToken(RoleManager, root), RoleManager, ""},
		{"format 1", "MKTKN-1-worker-00000000000000000000000000000000", "", "format-1 token"},
		{"other prefix", "SWMTKN-1-worker-00", "", "does not start with MKTKN-2-"},
		{"bad role", strings.Replace(a, "-worker-", "-admin-", 1), "", `role "admin"`},
		{"short hash", "MKTKN-2-worker-abcd-" + strings.Repeat("0", 32), "", "64 hex digits"},
		{"missing part", "MKTKN-2-worker-" + strings.Repeat("0", 64), "", "want MKTKN-2-<role>"},
		{"short secret", "MKTKN-2-worker-" + strings.Repeat("0", 64) + "-00", "", "at least 32 hex digits"},
		{"empty", "", "", "does not start"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := ParseToken(c.token)
			if c.err != "" {
				if !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ParseToken(%q) = %v, want an error containing %q", c.token, err, c.err)
				}
				return
			}
			if err != nil || tok.Role != c.role || TokenRole(c.token) != c.role {
				t.Fatalf("ParseToken(%q) = %+v, %v; want role %s", c.token, tok, err, c.role)
			}
		})
	}
}

// A re-pinned token keeps its secret and pins the new root.
func TestRepinToken(t *testing.T) {
	a := NewJoinToken(RoleManager, []byte("old"))
	b := RepinToken(RoleManager, []byte("new"), TokenSecret(a))
	ta, _ := ParseToken(a)
	tb, err := ParseToken(b)
	if err != nil || tb.Secret != ta.Secret || string(tb.CAHash) == string(ta.CAHash) || TokensEqual(a, b) {
		t.Fatalf("repinned %q -> %q (%v)", a, b, err)
	}
}
