package nft

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// ParseJSON reads the output of `nft -j list ruleset` (libnftables-json(5)).
// Rules are rendered back to nft's text syntax, the form evidence is quoted
// in; expressions this package does not know are rendered as their JSON,
// which the translation then reports as not modelled.
func ParseJSON(data []byte) (*Ruleset, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, &ParseError{Msg: "not valid nft JSON: " + err.Error()}
	}
	if doc.Nftables == nil {
		return nil, &ParseError{Msg: `not nft JSON: no "nftables" array`}
	}
	rs := &Ruleset{Format: "json"}
	table := func(fam, name string) *Table {
		if t := rs.Table(fam, name); t != nil {
			return t
		}
		t := &Table{Family: fam, Name: name}
		rs.Tables = append(rs.Tables, t)
		return t
	}
	type obj struct {
		Family  string          `json:"family"`
		Table   string          `json:"table"`
		Name    string          `json:"name"`
		Chain   string          `json:"chain"`
		Handle  int             `json:"handle"`
		Comment string          `json:"comment"`
		Type    json.RawMessage `json:"type"`
		Hook    string          `json:"hook"`
		Prio    json.RawMessage `json:"prio"`
		Policy  string          `json:"policy"`
		Map     json.RawMessage `json:"map"`
		Flags   json.RawMessage `json:"flags"`
		Elem    []any           `json:"elem"`
		Expr    []any           `json:"expr"`
	}
	for i, item := range doc.Nftables {
		for kind, raw := range item {
			var o obj
			switch kind {
			case "table", "set", "map", "chain", "rule":
				if err := json.Unmarshal(raw, &o); err != nil {
					return nil, &ParseError{Msg: fmt.Sprintf("item %d (%s): %v", i, kind, err)}
				}
			default:
				continue // metainfo, element, counter, flowtable, ...
			}
			switch kind {
			case "table":
				t := table(o.Family, o.Name)
				t.Comment = o.Comment
			case "set", "map":
				s := &Set{Name: o.Name, Map: kind == "map", Comment: o.Comment, Type: jsonType(o.Type)}
				if kind == "map" {
					s.Type += " : " + jsonType(o.Map)
				}
				s.Flags = stringList(o.Flags)
				for _, e := range o.Elem {
					s.Elements = append(s.Elements, jsonElement(e, s.Map))
				}
				table(o.Family, o.Table).addSet(s)
			case "chain":
				c := &Chain{Name: o.Name, Type: jsonType(o.Type), Hook: o.Hook, Policy: o.Policy, Comment: o.Comment}
				if len(o.Prio) > 0 {
					var n json.Number
					if json.Unmarshal(o.Prio, &n) == nil {
						c.Priority = n.String()
					} else {
						c.Priority = strings.Trim(string(o.Prio), `"`)
					}
				}
				table(o.Family, o.Table).addChain(c)
			case "rule":
				t := table(o.Family, o.Table)
				c := t.Chain(o.Chain)
				if c == nil {
					c = &Chain{Name: o.Chain}
					t.addChain(c)
				}
				var parts []string
				for _, e := range o.Expr {
					parts = append(parts, jsonStmt(e))
				}
				if o.Comment != "" {
					parts = append(parts, fmt.Sprintf("comment %q", o.Comment))
				}
				c.Rules = append(c.Rules, &Rule{Text: strings.Join(parts, " "), Handle: o.Handle})
			}
		}
	}
	return rs, nil
}

func jsonType(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		return strings.Join(l, " . ")
	}
	return string(raw)
}

func stringList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var l []string
	_ = json.Unmarshal(raw, &l)
	return l
}

func jsonElement(e any, isMap bool) Element {
	var key, val any = e, nil
	if l, ok := e.([]any); ok && isMap && len(l) == 2 {
		key, val = l[0], l[1]
	}
	if m, ok := key.(map[string]any); ok {
		if el, ok := m["elem"].(map[string]any); ok {
			key = el["val"]
		}
	}
	var el Element
	if m, ok := key.(map[string]any); ok {
		if parts, ok := m["concat"].([]any); ok {
			for _, p := range parts {
				el.Key = append(el.Key, jsonValue(p))
			}
		}
	}
	if el.Key == nil {
		el.Key = []string{jsonValue(key)}
	}
	el.Text = strings.Join(el.Key, " . ")
	if val != nil {
		el.Value = jsonVerdict(val)
		el.Text += " : " + el.Value
	}
	return el
}

// jsonValue renders a value (right-hand side, element, key part).
func jsonValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprintf("%d", int64(x))
	case []any:
		var p []string
		for _, e := range x {
			p = append(p, jsonValue(e))
		}
		return strings.Join(p, ",")
	case map[string]any:
		if p, ok := x["prefix"].(map[string]any); ok {
			return fmt.Sprintf("%s/%s", jsonValue(p["addr"]), jsonValue(p["len"]))
		}
		if r, ok := x["range"].([]any); ok && len(r) == 2 {
			return jsonValue(r[0]) + "-" + jsonValue(r[1])
		}
		if s, ok := x["set"].([]any); ok {
			var p []string
			for _, e := range s {
				if l, ok := e.([]any); ok && len(l) == 2 {
					p = append(p, jsonValue(l[0])+" : "+jsonVerdict(l[1]))
				} else {
					p = append(p, jsonValue(e))
				}
			}
			return "{ " + strings.Join(p, ", ") + " }"
		}
		if c, ok := x["concat"].([]any); ok {
			var p []string
			for _, e := range c {
				p = append(p, jsonValue(e))
			}
			return strings.Join(p, " . ")
		}
		return jsonExpr(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// jsonExpr renders a left-hand expression.
func jsonExpr(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return jsonValue(v)
	}
	for k, x := range m {
		switch k {
		case "payload":
			p, _ := x.(map[string]any)
			return fmt.Sprintf("%s %s", jsonValue(p["protocol"]), jsonValue(p["field"]))
		case "meta":
			p, _ := x.(map[string]any)
			return "meta " + jsonValue(p["key"])
		case "ct":
			p, _ := x.(map[string]any)
			return "ct " + jsonValue(p["key"])
		case "fib":
			p, _ := x.(map[string]any)
			flags := jsonValue(p["flags"])
			return "fib " + strings.ReplaceAll(flags, ",", " . ") + " " + jsonValue(p["result"])
		case "numgen":
			p, _ := x.(map[string]any)
			s := fmt.Sprintf("numgen %s mod %s", jsonValue(p["mode"]), jsonValue(p["mod"]))
			if off := jsonValue(p["offset"]); off != "" && off != "0" {
				s += " offset " + off
			}
			return s
		case "concat":
			l, _ := x.([]any)
			var p []string
			for _, e := range l {
				p = append(p, jsonExpr(e))
			}
			return strings.Join(p, " . ")
		case "&", "|", "^":
			l, _ := x.([]any)
			if len(l) == 2 {
				return jsonExpr(l[0]) + " " + k + " " + jsonMark(l[1])
			}
		case "prefix", "range", "set":
			return jsonValue(m)
		}
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

func jsonMark(v any) string {
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("0x%08x", int64(f))
	}
	return jsonExpr(v)
}

func jsonVerdict(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return jsonValue(v)
	}
	for k, x := range m {
		switch k {
		case "goto", "jump":
			p, _ := x.(map[string]any)
			return k + " " + jsonValue(p["target"])
		case "accept", "drop", "return", "continue":
			return k
		}
	}
	return jsonValue(v)
}

// jsonStmt renders one statement of a rule's "expr" list.
func jsonStmt(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		raw, _ := json.Marshal(v)
		return string(raw)
	}
	keys := make([]string, 0, 1)
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	k, x := keys[0], m[keys[0]]
	p, _ := x.(map[string]any)
	switch k {
	case "match":
		left := jsonExpr(p["left"])
		right := p["right"]
		op := jsonValue(p["op"])
		rs := jsonValue(right)
		if isMarkExpr(p["left"]) {
			rs = jsonMark(right)
		}
		switch op {
		case "==", "in", "":
			if strings.Contains(left, " & ") {
				return left + " == " + rs
			}
			return left + " " + rs
		default:
			return left + " " + op + " " + rs
		}
	case "vmap":
		return jsonExpr(p["key"]) + " vmap " + jsonValue(p["data"])
	case "jump", "goto":
		return k + " " + jsonValue(p["target"])
	case "accept", "drop", "return", "continue", "notrack":
		return k
	case "reject":
		return "reject"
	case "counter":
		return "counter"
	case "dnat", "snat":
		s := k + " "
		if f := jsonValue(p["family"]); f != "" {
			s += f + " "
		}
		addr := jsonValue(p["addr"])
		if port := jsonValue(p["port"]); port != "" {
			if strings.Contains(addr, ":") {
				addr = "[" + addr + "]"
			}
			addr += ":" + port
		}
		return s + "to " + addr
	case "masquerade":
		s := "masquerade"
		if p != nil {
			if fl := jsonValue(p["flags"]); fl != "" {
				s += " " + strings.ReplaceAll(fl, ",", " ")
			}
		}
		return s
	case "mangle":
		return jsonExpr(p["key"]) + " set " + jsonExprMark(p["value"])
	case "set", "update":
		return "update " + jsonValue(p["set"]) + " { " + jsonExpr(p["elem"]) + " }"
	case "log":
		return "log"
	case "limit":
		return "limit"
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

func jsonExprMark(v any) string {
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("0x%08x", int64(f))
	}
	return jsonExpr(v)
}

func isMarkExpr(v any) bool {
	s := jsonExpr(v)
	return strings.HasPrefix(s, "meta mark") || strings.HasPrefix(s, "ct mark")
}
