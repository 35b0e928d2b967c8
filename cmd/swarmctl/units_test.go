package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0", 0, ""},
		{"512", 512, ""},
		{"512b", 512, ""},
		{"1k", 1024, ""},
		{"1KB", 1024, ""},
		{"2KiB", 2048, ""},
		{"64M", 64 << 20, ""},
		{"64m", 64 << 20, ""},
		{"512MiB", 512 << 20, ""},
		{"1g", 1 << 30, ""},
		{"3GB", 3 << 30, ""},
		{"1gib", 1 << 30, ""},
		{"64Q", 0, `invalid --limit-memory "64Q": want a size like 64M, 512MiB or 1G`},
		{"", 0, "want a size"},
		{"M", 0, "want a size"},
		{"-1M", 0, "want a size"},
		{"1.5G", 0, "want a size"},
		{"1T", 0, "want a size"},
		{"99999999999999999G", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize("limit-memory", tt.in)
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("parseSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseNanoCPUs(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0.5", 500_000_000, ""},
		{"1", 1_000_000_000, ""},
		{"2.25", 2_250_000_000, ""},
		{".5", 500_000_000, ""},
		{"0.000000001", 1, ""},
		{"0", 0, `invalid --limit-cpu "0": want a positive number of CPUs`},
		{"0.0", 0, "positive"},
		{"-1", 0, "positive"},
		{"1.", 0, "positive"},
		{"abc", 0, "positive"},
		{"1e3", 0, "positive"},
		{"0.0000000001", 0, "at most 9 decimal places"},
		{"", 0, "positive"},
		{"99999999999", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseNanoCPUs("limit-cpu", tt.in)
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("parseNanoCPUs(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseKeyValue(t *testing.T) {
	tests := []struct {
		in, key, value, wantErr string
	}{
		{"A=b", "A", "b", ""},
		{"A=", "A", "", ""},
		{"A=b=c", "A", "b=c", ""},
		{"A", "", "", `invalid --env "A": want KEY=VALUE`},
		{"=b", "", "", "want KEY=VALUE"},
		{"A B=c", "", "", "want KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, v, err := parseKeyValue("env", tt.in)
			checkErr(t, err, tt.wantErr)
			if err == nil && (k != tt.key || v != tt.value) {
				t.Errorf("parseKeyValue(%q) = %q, %q; want %q, %q", tt.in, k, v, tt.key, tt.value)
			}
		})
	}
}

func TestParseScaleArg(t *testing.T) {
	tests := []struct {
		in      string
		want    scaleTarget
		wantErr string
	}{
		{"web=3", scaleTarget{"web", 3}, ""},
		{"web=0", scaleTarget{"web", 0}, ""},
		{"web", scaleTarget{}, `invalid scale argument "web": want SERVICE=REPLICAS, e.g. web=3`},
		{"=3", scaleTarget{}, "want SERVICE=REPLICAS"},
		{"web=-1", scaleTarget{}, "non-negative integer"},
		{"web=x", scaleTarget{}, "non-negative integer"},
		{"web=", scaleTarget{}, "non-negative integer"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseScaleArg(tt.in)
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("parseScaleArg(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseCountAndDuration(t *testing.T) {
	if n, err := parseCount("replicas", "7"); err != nil || n != 7 {
		t.Errorf("parseCount(7) = %d, %v", n, err)
	}
	for _, bad := range []string{"-1", "1.5", "x", ""} {
		_, err := parseCount("replicas", bad)
		checkErr(t, err, `invalid --replicas "`+bad+`": want a non-negative integer`)
	}
	if d, err := parseDuration("stop-grace-period", "1m30s"); err != nil || d != 90*time.Second {
		t.Errorf("parseDuration(1m30s) = %v, %v", d, err)
	}
	for _, bad := range []string{"-1s", "10", "soon"} {
		_, err := parseDuration("stop-grace-period", bad)
		checkErr(t, err, `invalid --stop-grace-period "`+bad+`": want a non-negative duration`)
	}
}

// checkErr fails unless err contains want, or err is nil when want is "".
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
