package main

import "testing"

func TestParseLogSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"20m", 20 << 20, true},
		{"512k", 512 << 10, true},
		{"1G", 1 << 30, true},
		{"100", 100, true},
		{"10mb", 10 << 20, true},
		{"-1", -1, true},
		{"0", 0, false},
		{"ten", 0, false},
		{"-5m", 0, false},
	}
	for _, tt := range tests {
		got, err := parseLogSize(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseLogSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
