package ca

import (
	"encoding/hex"
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
// Format 2 pins the CA: a parsed token is exactly prefix, role, the CA
// hash and the secret, and a format-1 token never parses.
func FuzzTokenRole(f *testing.F) {
	f.Add(NewJoinToken("worker", []byte("ca")))
	f.Add(NewJoinToken("manager", []byte("ca")))
	f.Add("MKTKN-1-worker-00000000000000000000000000000000")
	f.Fuzz(func(t *testing.T, token string) {
		tok, err := ParseToken(token)
		role := tok.Role
		if err != nil {
			role = ""
		}
		if TokenRole(token) != role {
			t.Fatalf("TokenRole(%q) = %q, ParseToken role %q", token, TokenRole(token), role)
		}
		token = strings.TrimSpace(token)
		if role != "" && token != TokenPrefix+role+"-"+hex.EncodeToString(tok.CAHash)+"-"+tok.Secret {
			t.Fatalf("ParseToken(%q) = %+v: not the token's own parts", token, tok)
		}
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
		a, b := NewJoinToken(role, []byte("ca")), NewJoinToken(role, []byte("ca"))
		if TokenRole(a) != role || a == b {
			t.Errorf("NewJoinToken(%q) = %q (again %q), TokenRole = %q", role, a, b, TokenRole(a))
		}
	}
}
