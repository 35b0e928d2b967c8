package runtime

import (
	"errors"
	"slices"
	"testing"
)

func TestResolveProcess(t *testing.T) {
	img := ImageConfig{
		Entrypoint: []string{"/entry"},
		Cmd:        []string{"default"},
		Env:        []string{"PATH=/img/bin", "A=1", "B=2"},
		WorkingDir: "/app",
		User:       "nobody",
	}
	tests := []struct {
		name     string
		spec     ContainerSpec
		img      ImageConfig
		wantArgs []string
		wantEnv  []string
		wantCwd  string
		wantUser string
	}{
		{"image defaults", ContainerSpec{ID: "c"}, img,
			[]string{"/entry", "default"}, []string{"PATH=/img/bin", "A=1", "B=2", "HOSTNAME=c"}, "/app", "nobody"},
		{"args replace cmd", ContainerSpec{ID: "c", Args: []string{"x"}}, img,
			[]string{"/entry", "x"}, nil, "/app", "nobody"},
		{"entrypoint drops image cmd", ContainerSpec{ID: "c", Entrypoint: []string{"/other"}}, img,
			[]string{"/other"}, nil, "/app", "nobody"},
		{"entrypoint and args", ContainerSpec{ID: "c", Entrypoint: []string{"/other"}, Args: []string{"y"}}, img,
			[]string{"/other", "y"}, nil, "/app", "nobody"},
		{"env overrides by key", ContainerSpec{ID: "c", Env: []string{"B=3", "C=4"}, WorkingDir: "/w", User: "1:2"}, img,
			[]string{"/entry", "default"}, []string{"PATH=/img/bin", "A=1", "B=3", "C=4", "HOSTNAME=c"}, "/w", "1:2"},
		{"defaults when image sets nothing", ContainerSpec{ID: "c", Args: []string{"sh"}}, ImageConfig{},
			[]string{"sh"}, []string{"PATH=" + defaultPath, "HOSTNAME=c"}, "/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := resolveProcess(&tc.spec, tc.img)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Args, tc.wantArgs) {
				t.Errorf("args %q, want %q", p.Args, tc.wantArgs)
			}
			if tc.wantEnv != nil && !slices.Equal(p.Env, tc.wantEnv) {
				t.Errorf("env %q, want %q", p.Env, tc.wantEnv)
			}
			if p.Cwd != tc.wantCwd || p.User != tc.wantUser {
				t.Errorf("cwd %q user %q, want %q %q", p.Cwd, p.User, tc.wantCwd, tc.wantUser)
			}
		})
	}
	if _, err := resolveProcess(&ContainerSpec{ID: "c"}, ImageConfig{}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("no command: err = %v, want ErrInvalidSpec", err)
	}
}

func TestValidateSpec(t *testing.T) {
	for _, s := range []ContainerSpec{
		{ID: "", Image: "x"},
		{ID: "../x", Image: "x"},
		{ID: "ok", Image: ""},
		{ID: "ok", Image: "x", MemoryLimit: -1},
		{ID: "ok", Image: "x", Env: []string{"NOVALUE"}},
		{ID: "ok", Image: "x", CapAdd: []string{"NOPE"}},
		{ID: "ok", Image: "x", CapDrop: []string{"NOPE"}},
	} {
		if err := s.validate(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%+v: err = %v, want ErrInvalidSpec", s, err)
		}
	}
}
