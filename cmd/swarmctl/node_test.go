package main

import (
	"strings"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestParseNodeUpdate(t *testing.T) {
	cases := []struct {
		name      string
		av        string
		add, rm   []string
		wantErr   string
		wantAv    minkepb.NodeSpec_Availability
		wantLabel string
	}{
		{name: "drain", av: "drain", wantAv: minkepb.NodeSpec_DRAIN},
		{name: "case-insensitive", av: "Pause", wantAv: minkepb.NodeSpec_PAUSE},
		{name: "label", add: []string{"zone=a"}, wantLabel: "a"},
		{name: "bad availability", av: "sleep", wantErr: `invalid --availability "sleep": want active, pause or drain`},
		{name: "empty key", add: []string{"=a"}, wantErr: `invalid --label-add "=a"`},
		{name: "nothing", wantErr: "nothing to update"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, err := parseNodeUpdate(c.av, c.add, c.rm)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.av != "" && *u.availability != c.wantAv {
				t.Errorf("availability = %v", *u.availability)
			}
			if c.wantLabel != "" && u.labelAdd["zone"] != c.wantLabel {
				t.Errorf("labels = %v", u.labelAdd)
			}
		})
	}
}
