package runtime

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestIsNameMatchesRegexp checks the hand-written name checks against the
// regular expressions they replace, on fixed cases and random strings.
func TestIsNameMatchesRegexp(t *testing.T) {
	idRe := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	volRe := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
	cases := []string{"", "a", "A", "0", "_", ".", "-", "a_", "a.b-c", "-a", ".a", "_a", "a b", "a/b", "é", "aé",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "a" + strings.Repeat("-", 127), "a\n", "a\x00"}
	alphabet := "aZ09_.-/ é\x00"
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		n := rng.IntN(140)
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		if got, want := validID(s) == nil, idRe.MatchString(s); got != want {
			t.Errorf("validID(%q) ok = %v, regexp says %v", s, got, want)
		}
		if got, want := volumeName(s), volRe.MatchString(s); got != want {
			t.Errorf("volumeName(%q) = %v, regexp says %v", s, got, want)
		}
	}
}
