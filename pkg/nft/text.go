package nft

import (
	"strconv"
	"strings"
)

// MaxLineLength bounds one logical line (a rule or an elements block) of
// the text form, so that a garbled input cannot grow it without limit.
const MaxLineLength = 64 << 20

// ParseText reads the text form printed by `nft list ruleset` (also `nft
// list table`, with or without `-a` handles). Blocks it does not know
// (flowtables, counters, ct helpers, ...) are skipped.
func ParseText(data []byte) (*Ruleset, error) {
	p := &textParser{lines: strings.Split(string(data), "\n")}
	rs := &Ruleset{Format: "text"}
	for p.next() {
		l := p.cur
		switch {
		case l == "":
		case strings.HasPrefix(l, "table "):
			t, err := p.table(l)
			if err != nil {
				return nil, err
			}
			rs.Tables = append(rs.Tables, t)
		case strings.HasPrefix(l, "#"):
		default:
			// Top-level statements (`flush ruleset`, `add ...`) of a file
			// written for `nft -f`: a table block follows or nothing does.
			if strings.HasSuffix(l, "{") {
				if err := p.skipBlock(); err != nil {
					return nil, err
				}
			}
		}
	}
	return rs, nil
}

type textParser struct {
	lines []string
	i     int // index of the next line
	cur   string
	line  int // 1-based line of cur
}

// next moves to the next line, trimmed, without a trailing handle comment.
func (p *textParser) next() bool {
	if p.i >= len(p.lines) {
		return false
	}
	p.line = p.i + 1
	p.cur = strings.TrimSpace(strings.TrimSuffix(p.lines[p.i], "\r"))
	p.i++
	return true
}

func (p *textParser) errf(msg string) error {
	return &ParseError{Line: p.line, Text: p.cur, Msg: msg}
}

// stripHandle removes "# handle N" (and any other trailing comment outside
// quotes) and returns the handle.
func stripHandle(l string) (string, int) {
	inQ := false
	for i := 0; i < len(l); i++ {
		switch l[i] {
		case '"':
			inQ = !inQ
		case '#':
			if !inQ {
				rest := strings.TrimSpace(l[i+1:])
				h := 0
				if strings.HasPrefix(rest, "handle ") {
					h, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(rest, "handle ")))
				}
				return strings.TrimSpace(l[:i]), h
			}
		}
	}
	return l, 0
}

// scanBraces walks s outside double quotes, keeping the brace depth, and
// calls f (when not nil) with each such byte and the depth around it; it
// returns the final depth.
func scanBraces(s string, f func(i int, c byte, depth int)) int {
	d, inQ := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			inQ = !inQ
			continue
		}
		if inQ {
			continue
		}
		switch c {
		case '{':
			d++
		case '}':
			d--
		}
		if f != nil {
			f(i, c, d)
		}
	}
	return d
}

// depth returns the brace balance of a line, outside quotes.
func depth(l string) int { return scanBraces(l, nil) }

// joinUnbalanced extends a line whose braces are not balanced with the
// following lines.
func (p *textParser) joinUnbalanced(l string) (string, error) {
	s, _, err := p.joinUnbalancedHandle(l)
	return s, err
}

// joinUnbalancedHandle is joinUnbalanced that also returns the handle of
// the last line joined (a rule's "# handle N" ends its last line).
func (p *textParser) joinUnbalancedHandle(l string) (string, int, error) {
	start, startText := p.line, p.cur
	d := depth(l)
	if d <= 0 {
		return l, 0, nil
	}
	handle := 0
	var b strings.Builder
	b.WriteString(l)
	for d > 0 {
		if !p.next() {
			return "", 0, &ParseError{Line: start, Text: startText, Msg: "unterminated { ... } (truncated ruleset?)"}
		}
		c, h := stripHandle(p.cur)
		handle = h
		b.WriteByte(' ')
		b.WriteString(c)
		if b.Len() > MaxLineLength {
			return "", 0, &ParseError{Line: start, Text: startText, Msg: "line too long"}
		}
		d += depth(c)
	}
	p.line = start
	return b.String(), handle, nil
}

func (p *textParser) skipBlock() error {
	start, text := p.line, p.cur
	d := depth(p.cur)
	for d > 0 {
		if !p.next() {
			return &ParseError{Line: start, Text: text, Msg: "unterminated block (truncated ruleset?)"}
		}
		d += depth(p.cur)
	}
	return nil
}

// unquote removes surrounding double quotes.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func blockName(l, kw string) (string, bool) {
	rest := strings.TrimSpace(strings.TrimPrefix(l, kw))
	if !strings.HasSuffix(rest, "{") {
		return "", false
	}
	return unquote(strings.TrimSpace(strings.TrimSuffix(rest, "{"))), true
}

var families = map[string]bool{"ip": true, "ip6": true, "inet": true, "arp": true, "bridge": true, "netdev": true}

func (p *textParser) table(l string) (*Table, error) {
	l, _ = stripHandle(l)
	name, ok := blockName(l, "table")
	if !ok {
		return nil, p.errf("expected `table FAMILY NAME {`")
	}
	t := &Table{Family: "ip", Name: name, Line: p.line}
	if f := strings.Fields(name); len(f) == 2 && families[f[0]] {
		t.Family, t.Name = f[0], unquote(f[1])
	} else if len(f) != 1 {
		return nil, p.errf("expected `table FAMILY NAME {`")
	}
	for {
		if !p.next() {
			return nil, &ParseError{Line: t.Line, Text: "table " + t.String(), Msg: "table not closed (truncated ruleset?)"}
		}
		l, _ := stripHandle(p.cur)
		switch {
		case l == "":
		case l == "}":
			return t, nil
		case strings.HasPrefix(l, "comment "):
			t.Comment = unquote(strings.TrimSpace(strings.TrimPrefix(l, "comment ")))
		case strings.HasPrefix(l, "flags "):
		case strings.HasPrefix(l, "set "), strings.HasPrefix(l, "map "):
			isMap := strings.HasPrefix(l, "map ")
			kw := "set"
			if isMap {
				kw = "map"
			}
			name, ok := blockName(l, kw)
			if !ok {
				return nil, p.errf("expected `" + kw + " NAME {`")
			}
			s, err := p.set(name, isMap)
			if err != nil {
				return nil, err
			}
			t.addSet(s)
		case strings.HasPrefix(l, "chain "):
			name, ok := blockName(l, "chain")
			if !ok {
				return nil, p.errf("expected `chain NAME {`")
			}
			c, err := p.chain(name)
			if err != nil {
				return nil, err
			}
			t.addChain(c)
		case strings.HasSuffix(l, "{"):
			if err := p.skipBlock(); err != nil {
				return nil, err
			}
		default:
			return nil, p.errf("unexpected line in table " + t.String())
		}
	}
}

func (p *textParser) set(name string, isMap bool) (*Set, error) {
	s := &Set{Name: name, Map: isMap, Line: p.line}
	for {
		if !p.next() {
			return nil, &ParseError{Line: s.Line, Text: name, Msg: "set not closed (truncated ruleset?)"}
		}
		l, _ := stripHandle(p.cur)
		switch {
		case l == "":
		case l == "}":
			return s, nil
		case strings.HasPrefix(l, "type "), strings.HasPrefix(l, "typeof "):
			s.Type = strings.TrimSpace(l[strings.IndexByte(l, ' ')+1:])
		case strings.HasPrefix(l, "flags "):
			for _, f := range strings.Split(strings.TrimPrefix(l, "flags "), ",") {
				s.Flags = append(s.Flags, strings.TrimSpace(f))
			}
		case strings.HasPrefix(l, "comment "):
			s.Comment = unquote(strings.TrimSpace(strings.TrimPrefix(l, "comment ")))
		case strings.HasPrefix(l, "elements"):
			line := p.line
			full, err := p.joinUnbalanced(l)
			if err != nil {
				return nil, err
			}
			open, end := strings.IndexByte(full, '{'), strings.LastIndexByte(full, '}')
			if open < 0 || end < open {
				return nil, p.errf("expected `elements = { ... }`")
			}
			for _, et := range splitTop(full[open+1 : end]) {
				e, err := parseElement(et, isMap)
				if err != nil {
					return nil, &ParseError{Line: line, Text: et, Msg: err.Error()}
				}
				e.Line = line
				s.Elements = append(s.Elements, e)
			}
		case strings.HasSuffix(l, "{"):
			if err := p.skipBlock(); err != nil {
				return nil, err
			}
		default:
			// size, timeout, policy, gc-interval, counter, auto-merge: not needed.
		}
	}
}

// splitTop splits at commas outside braces and quotes, trimming blanks.
func splitTop(s string) []string {
	var out []string
	start := 0
	scanBraces(s, func(i int, c byte, d int) {
		if c == ',' && d == 0 {
			if t := strings.TrimSpace(s[start:i]); t != "" {
				out = append(out, t)
			}
			start = i + 1
		}
	})
	if t := strings.TrimSpace(s[start:]); t != "" {
		out = append(out, t)
	}
	return out
}

// parseElement reads "k1 . k2 . k3 [attrs] [: value]".
func parseElement(text string, isMap bool) (Element, error) {
	e := Element{Text: text}
	toks := tokenize(text)
	i := 0
	for i < len(toks) {
		e.Key = append(e.Key, toks[i])
		i++
		if i < len(toks) && toks[i] == "." {
			i++
			continue
		}
		break
	}
	// Element attributes: timeout X, expires Y, comment "..", counter ...
	for i < len(toks) && toks[i] != ":" {
		i++
	}
	if i < len(toks) {
		e.Value = strings.Join(toks[i+1:], " ")
	}
	if len(e.Key) == 0 || e.Key[len(e.Key)-1] == "" {
		return e, errString("empty element")
	}
	if isMap && e.Value == "" {
		return e, errString("map element without a value")
	}
	return e, nil
}

type errString string

func (e errString) Error() string { return string(e) }

func (p *textParser) chain(name string) (*Chain, error) {
	c := &Chain{Name: name, Line: p.line}
	for {
		if !p.next() {
			return nil, &ParseError{Line: c.Line, Text: name, Msg: "chain not closed (truncated ruleset?)"}
		}
		raw := p.cur
		l, h := stripHandle(raw)
		switch {
		case l == "":
		case l == "}":
			return c, nil
		case strings.HasPrefix(l, "type ") && strings.Contains(l, " hook "):
			parseChainHeader(c, l)
		case strings.HasPrefix(l, "policy "):
			c.Policy = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(l, "policy ")), ";")
		case strings.HasPrefix(l, "comment "):
			// No rule starts with "comment": this is the chain's comment.
			c.Comment = unquote(strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(l, "comment ")), ";"))
		case strings.HasPrefix(l, "devices "):
			if _, err := p.joinUnbalanced(l); err != nil {
				return nil, err
			}
		default:
			line := p.line
			full, h2, err := p.joinUnbalancedHandle(l)
			if err != nil {
				return nil, err
			}
			if h2 != 0 {
				h = h2
			}
			if depth(full) != 0 {
				return nil, &ParseError{Line: line, Text: full, Msg: "unbalanced braces"}
			}
			c.Rules = append(c.Rules, &Rule{Text: full, Line: line, Handle: h})
		}
	}
}

// parseChainHeader reads "type nat hook prerouting priority dstnat; policy accept;".
func parseChainHeader(c *Chain, l string) {
	for _, part := range strings.Split(l, ";") {
		f := strings.Fields(part)
		for i := 0; i+1 < len(f); i++ {
			switch f[i] {
			case "type":
				c.Type = f[i+1]
			case "hook":
				c.Hook = f[i+1]
			case "priority":
				c.Priority = strings.Join(f[i+1:], " ")
				i = len(f)
			case "policy":
				c.Policy = f[i+1]
			}
		}
	}
}

// tokenize splits a rule or element: blanks separate tokens; braces and
// commas are tokens of their own; a quoted string is one token (with its
// quotes).
func tokenize(s string) []string {
	var out []string
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '{' || c == '}' || c == ',':
			out = append(out, string(c))
			i++
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				j++
			}
			if j < len(s) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r{},\"", rune(s[j])) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out
}
