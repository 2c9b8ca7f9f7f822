package nft

import (
	"strings"
)

// An expr is one expression or statement of a rule.
type expr struct {
	// For a match: the selectors of the (possibly concatenated) key, e.g.
	// ["ip daddr", "meta l4proto", "th dport"].
	sel []string
	// mask of "meta mark & MASK == VALUE".
	mask string
	// op is "==" or "!=" (matches), "" for statements.
	op string
	// The value: a literal, "@set", or an anonymous set's elements.
	val  string
	anon []string
	// vmap: the value is a verdict map (named in val as "@m", or anon).
	vmap bool
	// stmt is a statement's keyword and arguments: "jump X", "dnat to A",
	// "masquerade fully-random", "mark or 0x4000"... ("" for a match).
	stmt string
	// text is the expression as written.
	text string
}

func (e *expr) isMatch() bool { return e.stmt == "" }

// selectorWords lists how many words each selector start takes.
func selectorAt(toks []string, i int) (string, int) {
	if i >= len(toks) {
		return "", 0
	}
	t := toks[i]
	next := func(k int) string {
		if i+k < len(toks) {
			return toks[i+k]
		}
		return ""
	}
	switch t {
	case "ip", "ip6", "th", "tcp", "udp", "sctp", "icmp", "icmpv6":
		if f := next(1); f != "" && isWord(f) {
			return t + " " + f, 2
		}
	case "meta", "ct":
		if f := next(1); f != "" && isWord(f) {
			if next(2) == "set" {
				return "", 0 // a statement
			}
			return t + " " + f, 2
		}
	case "fib":
		// fib daddr [. iif] type|oif
		j := 1
		var parts []string
		for i+j < len(toks) {
			w := toks[i+j]
			if w == "type" || w == "oif" || w == "oifname" {
				parts = append(parts, w)
				j++
				break
			}
			parts = append(parts, w)
			j++
		}
		return "fib " + strings.Join(parts, " "), j
	case "numgen":
		// numgen random mod N [offset K]
		j := 1
		for i+j < len(toks) && (toks[i+j] == "random" || toks[i+j] == "inc" || toks[i+j] == "mod" || toks[i+j] == "offset" || isNumber(toks[i+j])) {
			j++
		}
		return strings.Join(toks[i:i+j], " "), j
	case "iifname", "oifname", "iif", "oif", "mark", "l4proto":
		if next(1) != "set" {
			return t, 1
		}
	}
	return "", 0
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseRule splits a rule into expressions and statements.
func parseRule(text string) []expr {
	toks := tokenize(text)
	var out []expr
	i := 0
	for i < len(toks) {
		start := i
		if sel, n := selectorAt(toks, i); n > 0 {
			e := expr{sel: []string{sel}}
			i += n
			for i < len(toks) && toks[i] == "." {
				s2, n2 := selectorAt(toks, i+1)
				if n2 == 0 {
					break
				}
				e.sel = append(e.sel, s2)
				i += 1 + n2
			}
			if i < len(toks) && toks[i] == "&" && i+1 < len(toks) {
				e.mask = toks[i+1]
				i += 2
			}
			e.op = "=="
			if i < len(toks) {
				switch toks[i] {
				case "==", "eq":
					i++
				case "!=", "ne":
					e.op = "!="
					i++
				case "vmap":
					e.vmap = true
					i++
				}
			}
			if i < len(toks) {
				if toks[i] == "{" {
					j := closing(toks, i)
					e.anon = splitTop(strings.Join(toks[i+1:j], " "))
					e.val = "{}"
					i = j + 1
				} else {
					e.val = toks[i]
					i++
				}
			}
			e.text = strings.Join(toks[start:i], " ")
			out = append(out, e)
			continue
		}
		// Statements.
		t := toks[i]
		e := expr{}
		switch t {
		case "jump", "goto":
			if i+1 < len(toks) {
				e.stmt = t + " " + unquote(toks[i+1])
				i += 2
			} else {
				e.stmt = "unknown " + t
				i++
			}
		case "return", "accept", "drop", "continue", "notrack":
			e.stmt = t
			i++
		case "reject":
			e.stmt = "reject"
			i++
			if i < len(toks) && toks[i] == "with" {
				j := i + 1
				for j < len(toks) && !isStatementStart(toks[j]) {
					j++
				}
				e.stmt += " " + strings.Join(toks[i:j], " ")
				i = j
			}
		case "dnat", "snat":
			// dnat [ip|ip6] to ADDR
			j := i + 1
			for j < len(toks) && toks[j] != "to" {
				j++
			}
			if j+1 < len(toks) {
				e.stmt = t + " to " + toks[j+1]
				i = j + 2
			} else {
				e.stmt = "unknown " + t
				i = len(toks)
			}
		case "masquerade":
			e.stmt = "masquerade"
			i++
			for i < len(toks) && (toks[i] == "fully-random" || toks[i] == "random" || toks[i] == "persistent" || toks[i] == ",") {
				if toks[i] != "," {
					e.stmt += " " + toks[i]
				}
				i++
			}
		case "counter":
			e.stmt = "counter"
			i++
			for i+1 < len(toks) && (toks[i] == "packets" || toks[i] == "bytes") {
				i += 2
			}
		case "comment", "log", "limit", "update", "add", "quota":
			// Side effects the trace does not need: skip to the next statement.
			e.stmt = "ignore " + t
			i++
			for i < len(toks) && !isStatementStart(toks[i]) {
				if toks[i] == "{" {
					i = closing(toks, i)
				}
				i++
			}
		case "meta", "ct":
			if i+2 < len(toks) && toks[i+2] == "set" {
				// meta mark set meta mark | 0x4000 / ^ / & / VALUE
				key := toks[i+1]
				j := i + 3
				var val []string
				for j < len(toks) && !isStatementStart(toks[j]) {
					val = append(val, toks[j])
					j++
				}
				e.stmt = markStmt(t, key, val)
				i = j
				break
			}
			e.stmt = "unknown " + t
			i++
		default:
			e.stmt = "unknown " + t
			i++
		}
		e.text = strings.Join(toks[start:i], " ")
		out = append(out, e)
	}
	return out
}

func markStmt(scope, key string, val []string) string {
	if scope != "meta" || key != "mark" {
		return "ignore " + scope + " " + key + " set"
	}
	// "meta mark | 0x4000" or "0x4000"
	if len(val) == 4 && val[0] == "meta" && val[1] == "mark" {
		switch val[2] {
		case "|", "or":
			return "mark or " + val[3]
		case "^", "xor":
			return "mark xor " + val[3]
		case "&", "and":
			return "mark and " + val[3]
		}
	}
	if len(val) == 1 {
		return "mark set " + val[0]
	}
	return "unknown meta mark set " + strings.Join(val, " ")
}

func isStatementStart(t string) bool {
	switch t {
	case "jump", "goto", "return", "accept", "drop", "reject", "dnat", "snat", "masquerade", "counter", "comment", "log", "limit", "continue", "notrack", "update", "add", "quota":
		return true
	}
	return false
}

// closing returns the index of the "}" closing toks[i] == "{" (or the last
// token).
func closing(toks []string, i int) int {
	d := 0
	for j := i; j < len(toks); j++ {
		switch toks[j] {
		case "{":
			d++
		case "}":
			d--
			if d == 0 {
				return j
			}
		}
	}
	return len(toks) - 1
}
