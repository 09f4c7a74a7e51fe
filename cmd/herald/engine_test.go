package main

import "testing"

func TestSplitParams(t *testing.T) {
	tests := []struct {
		spec, base, prefix string
		replicas           int
		bad                bool
	}{
		{"nats://h:4222", "nats://h:4222", "", 0, false},
		{"nats://h:4222?prefix=SHOP&replicas=3", "nats://h:4222", "SHOP", 3, false},
		{"redis://h:6379/0?prefix=shop&dial_timeout=3s", "redis://h:6379/0?dial_timeout=3s", "shop", 0, false},
		{"redis://h:6379/0?replicas=3", "", "", 0, true},
		{"nats://h:4222?replicas=9", "", "", 0, true},
		{"nats://h:4222?replicas=x", "", "", 0, true},
	}
	for _, tt := range tests {
		base, p, err := splitParams(tt.spec)
		if (err != nil) != tt.bad {
			t.Errorf("splitParams(%q) error %v, want error=%v", tt.spec, err, tt.bad)
			continue
		}
		if !tt.bad && (base != tt.base || p.prefix != tt.prefix || p.replicas != tt.replicas) {
			t.Errorf("splitParams(%q) = %q, %+v; want %q, prefix %q, replicas %d", tt.spec, base, p, tt.base, tt.prefix, tt.replicas)
		}
	}
}
