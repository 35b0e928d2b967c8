package runtime

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestResolveRlimits(t *testing.T) {
	tests := []struct {
		name    string
		in      []Ulimit
		want    []rlimitSpec
		wantErr string
	}{
		{"defaults", nil, []rlimitSpec{{Resource: 7, Soft: 1024, Hard: 524288, Default: true}}, ""},
		{"override nofile, add core unlimited", []Ulimit{{Name: "NOFILE", Soft: 10, Hard: 20}, {Name: "core", Soft: -1, Hard: -1}},
			[]rlimitSpec{{Resource: 4, Soft: rlimInfinity, Hard: rlimInfinity}, {Resource: 7, Soft: 10, Hard: 20}}, ""},
		{"unknown", []Ulimit{{Name: "files", Soft: 1, Hard: 1}}, nil, `ulimit "files": want one of as, core, cpu`},
		{"soft above hard", []Ulimit{{Name: "nproc", Soft: 5, Hard: 4}}, nil, "soft limit 5 is above the hard limit 4"},
		{"soft above unlimited hard is fine", []Ulimit{{Name: "nproc", Soft: 5, Hard: -1}},
			[]rlimitSpec{{Resource: 6, Soft: 5, Hard: rlimInfinity}, {Resource: 7, Soft: 1024, Hard: 524288, Default: true}}, ""},
		{"unlimited soft under a hard limit", []Ulimit{{Name: "nproc", Soft: -1, Hard: 4}}, nil, "soft limit -1 is above the hard limit 4"},
		{"below -1", []Ulimit{{Name: "stack", Soft: -2, Hard: 1}}, nil, "values must be -1 (unlimited) or at least 0"},
		{"twice", []Ulimit{{Name: "core", Soft: 1, Hard: 1}, {Name: "CORE", Soft: 1, Hard: 1}}, nil, `ulimit "CORE" given twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveRlimits(tc.in)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidSpec with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
