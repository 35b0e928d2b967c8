package runtime

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	MaybeRunInit()
	code := m.Run()
	removeHelper()
	os.Exit(code)
}
