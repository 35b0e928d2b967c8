package ca

import (
	"strings"
	"testing"
)

// FuzzTokenRole checks join-token parsing on arbitrary input: it never
// panics, names only a real role, and only for a token of the documented
// shape; and tokens this package makes parse to their role. Its seeds are
// in testdata/fuzz/FuzzTokenRole; run it longer with
//
//	go test -run '^$' -fuzz '^FuzzTokenRole$' -fuzztime 2m ./pkg/ca
//
// When the token format changes (a CA pin in the token), point parse at the
// new parse function and extend the shape check; the properties stay.
func FuzzTokenRole(f *testing.F) {
	f.Add(NewJoinToken("worker"))
	f.Add(NewJoinToken("manager"))
	parse := TokenRole
	f.Fuzz(func(t *testing.T, token string) {
		role := parse(token)
		switch role {
		case "":
			return
		case "worker", "manager":
		default:
			t.Fatalf("TokenRole(%q) = %q, want worker, manager or empty", token, role)
		}
		if !strings.HasPrefix(token, TokenPrefix+role+"-") {
			t.Fatalf("TokenRole(%q) = %q for a token without the prefix %q", token, role, TokenPrefix+role+"-")
		}
		// A role is never read from a token with the prefix of the other.
		other := map[string]string{"worker": "manager", "manager": "worker"}[role]
		if strings.HasPrefix(token, TokenPrefix+other+"-") {
			t.Fatalf("TokenRole(%q) = %q", token, role)
		}
	})
}

func TestNewJoinTokenParses(t *testing.T) {
	for _, role := range []string{"worker", "manager"} {
		a, b := NewJoinToken(role), NewJoinToken(role)
		if TokenRole(a) != role || a == b {
			t.Errorf("NewJoinToken(%q) = %q (again %q), TokenRole = %q", role, a, b, TokenRole(a))
		}
	}
}
