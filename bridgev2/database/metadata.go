package database

import (
	"encoding/json"
	"fmt"
)

// marshalMeta encodes connector metadata; nil becomes an empty object so the
// column is always valid JSON.
func marshalMeta(v any) (string, error) {
	if v == nil {
		return "{}", nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode metadata: %w", err)
	}
	return string(data), nil
}

// unmarshalMeta decodes a metadata column into a fresh value of the type the
// connector declared.
func unmarshalMeta(newFn func() any, raw string) (any, error) {
	var v any
	if newFn != nil {
		v = newFn()
	} else {
		v = &map[string]any{}
	}
	if raw == "" || raw == "{}" {
		return v, nil
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	return v, nil
}
