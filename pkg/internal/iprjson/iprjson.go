// Package iprjson reads iproute2's JSON output (ip -j ...) leniently.
package iprjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMalformed is wrapped by every decoding error; the packages that use
// this one re-export it as their own ErrMalformed.
var ErrMalformed = errors.New("malformed iproute2 JSON")

// Object is one JSON Object of iproute2's output, read leniently: iproute2
// versions differ in field types (numbers printed as strings, booleans as
// "on"/"off", null for absent values), so every accessor accepts the forms
// seen in the wild and reports "absent" for anything else.
type Object map[string]json.RawMessage

// DecodeArray decodes iproute2's top-level JSON array. Empty input (the
// command printed nothing) is an empty list. Empty objects, which some
// iproute2 versions print for filtered-out entries, are dropped.
func DecodeArray(data []byte) ([]Object, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	out := make([]Object, 0, len(raws)) // non-nil: the input was an array
	for i, raw := range raws {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] != '{' {
			return nil, fmt.Errorf("%w: element %d is not an Object", ErrMalformed, i)
		}
		var o Object
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
func (o Object) Has(key string) bool {
	_, ok := o[key]
	return ok
}

// str returns a string field; numbers are returned as their literal text.
func (o Object) Str(key string) (string, bool) {
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
func (o Object) Int(key string) (int64, bool) {
	s, ok := o.Str(key)
	if !ok {
		return 0, false
	}
	return ParseInt(s)
}

func ParseInt(s string) (int64, bool) {
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
func (o Object) Bool(key string) (value, ok bool) {
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
	if n, ok := o.Int(key); ok {
		return n != 0, true
	}
	return false, false
}

// strs returns an array of strings, skipping elements of other types.
func (o Object) Strs(key string) []string {
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

// obj returns a nested Object.
func (o Object) Obj(key string) (Object, bool) {
	raw, ok := o[key]
	if !ok {
		return nil, false
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var n Object
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, false
	}
	return n, true
}

// objs returns an array of objects, skipping elements of other types.
func (o Object) Objs(key string) []Object {
	raw, ok := o[key]
	if !ok {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil
	}
	var out []Object
	for _, it := range items {
		var n Object
		if err := json.Unmarshal(it, &n); err == nil && n != nil {
			out = append(out, n)
		}
	}
	return out
}

// raw re-encodes the Object (sorted keys) for a Raw field.
func (o Object) Raw() json.RawMessage {
	b, err := json.Marshal(map[string]json.RawMessage(o))
	if err != nil {
		return nil
	}
	return b
}
