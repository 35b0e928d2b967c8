package runtime

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	MaybeRunInit()
	code := m.Run()
	removeStaticHelper()
	os.Exit(code)
}
