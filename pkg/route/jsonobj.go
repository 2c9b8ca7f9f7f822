package route

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// object is one JSON object of iproute2's output, read leniently: iproute2
// versions differ in field types (numbers printed as strings, booleans as
// "on"/"off", null for absent values), so every accessor accepts the forms
// seen in the wild and reports "absent" for anything else.
type object map[string]json.RawMessage

// decodeArray decodes iproute2's top-level JSON array. Empty input (the
// command printed nothing) is an empty list. Empty objects, which some
// iproute2 versions print for filtered-out entries, are dropped.
func decodeArray(data []byte) ([]object, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	out := make([]object, 0, len(raws)) // non-nil: the input was an array
	for i, raw := range raws {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] != '{' {
			return nil, fmt.Errorf("%w: element %d is not an object", ErrMalformed, i)
		}
		var o object
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("%w: element %d: %w", ErrMalformed, i, err)
		}
		if len(o) == 0 {
			continue
		}
		out = append(out, o)
	}
	return out, nil
}

// has reports whether key is present, even with a null value (iproute2
// prints flags such as "not": null and "l3mdev": null that way).
func (o object) has(key string) bool {
	_, ok := o[key]
	return ok
}

// str returns a string field; numbers are returned as their literal text.
func (o object) str(key string) (string, bool) {
	raw, ok := o[key]
	if !ok {
		return "", false
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return s, true
	}
	if raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') {
		return string(raw), true
	}
	return "", false
}

// int returns an integer field, accepting numbers and numeric strings
// (decimal or 0x-prefixed hex).
func (o object) int(key string) (int64, bool) {
	s, ok := o.str(key)
	if !ok {
		return 0, false
	}
	return parseInt(s)
}

func parseInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseInt(s, 0, 64); err == nil {
		return v, true
	}
	if v, err := strconv.ParseUint(s, 0, 64); err == nil {
		return int64(v), true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == float64(int64(f)) {
		return int64(f), true
	}
	return 0, false
}

// bool returns a boolean field; "on"/"off", "true"/"false" and numbers are
// accepted too.
func (o object) bool(key string) (value, ok bool) {
	raw, present := o[key]
	if !present {
		return false, false
	}
	switch strings.TrimSpace(string(raw)) {
	case "true", `"true"`, `"on"`, `"yes"`:
		return true, true
	case "false", `"false"`, `"off"`, `"no"`:
		return false, true
	}
	if n, ok := o.int(key); ok {
		return n != 0, true
	}
	return false, false
}

// strs returns an array of strings, skipping elements of other types.
func (o object) strs(key string) []string {
	raw, ok := o[key]
	if !ok {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil
	}
	var out []string
	for _, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// obj returns a nested object.
func (o object) obj(key string) (object, bool) {
	raw, ok := o[key]
	if !ok {
		return nil, false
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var n object
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, false
	}
	return n, true
}

// objs returns an array of objects, skipping elements of other types.
func (o object) objs(key string) []object {
	raw, ok := o[key]
	if !ok {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil
	}
	var out []object
	for _, it := range items {
		var n object
		if err := json.Unmarshal(it, &n); err == nil && n != nil {
			out = append(out, n)
		}
	}
	return out
}

// raw re-encodes the object (sorted keys) for a Raw field.
func (o object) raw() json.RawMessage {
	b, err := json.Marshal(map[string]json.RawMessage(o))
	if err != nil {
		return nil
	}
	return b
}
