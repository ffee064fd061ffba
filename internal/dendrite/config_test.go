package dendrite

import (
	"reflect"
	"testing"
)

func TestSetPath(t *testing.T) {
	cfg := map[string]any{
		"client_api": map[string]any{"rate_limiting": map[string]any{"enabled": true, "threshold": 5}},
		"logging":    []any{},
	}
	if err := setPath(cfg, "client_api.rate_limiting.enabled", false); err != nil {
		t.Fatal(err)
	}
	if err := setPath(cfg, "media_api.max_file_size_bytes", 42); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"client_api": map[string]any{"rate_limiting": map[string]any{"enabled": false, "threshold": 5}},
		"logging":    []any{},
		"media_api":  map[string]any{"max_file_size_bytes": 42},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %v, want %v", cfg, want)
	}
	if err := setPath(cfg, "logging.level", "info"); err == nil {
		t.Error("setting a key inside a list succeeded")
	}
}
