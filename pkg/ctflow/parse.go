package ctflow

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseOptions tune Parse.
type ParseOptions struct {
	// Lenient skips malformed lines (counting them in Dump.Skipped and
	// keeping their errors in Dump.Errors) instead of failing on the first.
	Lenient bool
}

// Dump is a parsed `conntrack -L` output.
type Dump struct {
	Flows []Flow
	// Skipped counts malformed lines skipped in lenient mode.
	Skipped int
	// Errors are the *LineError values of the skipped lines.
	Errors []error
	// Messages are the lines conntrack prints about itself ("conntrack
	// v1.4.7 (conntrack-tools): 5 flow entries have been shown."), which
	// are not entries.
	Messages []string
}

// Parse parses `conntrack -L` text (any of the forms the package doc lists).
// Blank lines and conntrack's own header/footer lines are skipped. A
// malformed line is an error naming its line number unless opts.Lenient.
func Parse(data []byte, opts ParseOptions) (*Dump, error) {
	d := &Dump{Flows: make([]Flow, 0, bytes.Count(data, []byte{'\n'})+1)}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if isMessage(trimmed) {
			d.Messages = append(d.Messages, trimmed)
			continue
		}
		f, err := ParseLine(trimmed)
		if err != nil {
			le := &LineError{Line: n, Text: line, Err: err}
			if !opts.Lenient {
				return nil, le
			}
			d.Skipped++
			d.Errors = append(d.Errors, le)
			continue
		}
		f.Line, f.Raw = n, line
		d.Flows = append(d.Flows, f)
	}
	if err := sc.Err(); err != nil {
		le := &LineError{Line: n + 1, Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
		if !opts.Lenient {
			return nil, le
		}
		d.Skipped++
		d.Errors = append(d.Errors, le)
	}
	return d, nil
}

// isMessage recognises the lines conntrack-tools prints about itself.
func isMessage(line string) bool {
	return strings.HasPrefix(line, "conntrack v") || strings.HasPrefix(line, "conntrack:")
}

// tokenize splits on blanks, keeping a bracketed field with blanks inside
// ("[start=Thu Nov 21 06:07:00 2024]") as one token.
func tokenize(line string) []string {
	fields := strings.Fields(line)
	if !strings.Contains(line, "[") || !needsJoin(fields) {
		return fields
	}
	out := make([]string, 0, len(fields))
	for i := 0; i < len(fields); i++ {
		t := fields[i]
		if strings.HasPrefix(t, "[") && !strings.HasSuffix(t, "]") {
			j := i + 1
			for j < len(fields) && !strings.HasSuffix(fields[j], "]") {
				j++
			}
			if j < len(fields) {
				t = strings.Join(fields[i:j+1], " ")
				i = j
			}
		}
		out = append(out, t)
	}
	return out
}

// needsJoin reports whether a bracketed field was split at blanks.
func needsJoin(fields []string) bool {
	for _, f := range fields {
		if strings.HasPrefix(f, "[") && !strings.HasSuffix(f, "]") {
			return true
		}
	}
	return false
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
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

// isTupleKey reports whether key belongs to a tuple of protocol p: the
// per-protocol fields are those __snprintf_proto prints for it.
func isTupleKey(key string, p Proto) bool {
	switch key {
	case "src", "dst", "zone-orig", "zone-reply", "packets", "bytes":
		return true
	case "sport", "dport":
		return p.HasPorts()
	case "type", "code", "id":
		return p.IsICMP()
	case "srckey", "dstkey":
		return p == ProtoGRE
	}
	return false
}

// tupleKeyBit numbers the tuple keys for tupleState.seen.
var tupleKeyBit = map[string]uint16{
	"src": 1 << 0, "dst": 1 << 1, "sport": 1 << 2, "dport": 1 << 3,
	"type": 1 << 4, "code": 1 << 5, "id": 1 << 6, "srckey": 1 << 7, "dstkey": 1 << 8,
	"zone-orig": 1 << 9, "zone-reply": 1 << 10, "packets": 1 << 11, "bytes": 1 << 12,
}

// tupleState tracks which fields a tuple has been given.
type tupleState struct {
	t    *Tuple
	bits uint16
}

func (ts *tupleState) seen(key string) bool { return ts.bits&tupleKeyBit[key] != 0 }

func (ts *tupleState) set(key, val string) error {
	if ts.seen(key) {
		return fmt.Errorf("%w: duplicate %s=", ErrMalformed, key)
	}
	ts.bits |= tupleKeyBit[key]
	t := ts.t
	switch key {
	case "src", "dst":
		a, err := netip.ParseAddr(val)
		if err != nil {
			return fmt.Errorf("%w: %s=%q: %w", ErrBadValue, key, val, err)
		}
		if key == "src" {
			t.Src = a
		} else {
			t.Dst = a
		}
	case "sport", "dport":
		p, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return fmt.Errorf("%w: %s=%q: %w", ErrBadValue, key, val, err)
		}
		if key == "sport" {
			t.SPort = uint16(p)
		} else {
			t.DPort = uint16(p)
		}
		t.HasPorts = ts.seen("sport") && ts.seen("dport")
	case "type", "code":
		v, err := strconv.ParseUint(val, 10, 8)
		if err != nil {
			return fmt.Errorf("%w: %s=%q: %w", ErrBadValue, key, val, err)
		}
		if key == "type" {
			t.ICMPType = uint8(v)
		} else {
			t.ICMPCode = uint8(v)
		}
		t.HasICMP = true
	case "id":
		v, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return fmt.Errorf("%w: %s=%q: %w", ErrBadValue, key, val, err)
		}
		t.ICMPID = uint16(v)
		t.HasICMP = true
	case "srckey":
		t.SrcKey = val
	case "dstkey":
		t.DstKey = val
	case "zone-orig", "zone-reply":
		v, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return fmt.Errorf("%w: %s=%q: %w", ErrBadValue, key, val, err)
		}
		t.Zone, t.HasZone = uint16(v), true
	case "packets", "bytes":
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %s=%q: %w", ErrBadValue, key, val, err)
		}
		if key == "packets" {
			t.Packets = v
		} else {
			t.Bytes = v
		}
		t.HasCounters = true
	}
	return nil
}

func (ts *tupleState) complete(p Proto, which string) error {
	if !ts.seen("src") || !ts.seen("dst") {
		return fmt.Errorf("%w: %s tuple lacks src/dst", ErrMissingTuple, which)
	}
	if ts.t.Src.Is4() != ts.t.Dst.Is4() {
		return fmt.Errorf("%w: %s tuple mixes address families", ErrBadValue, which)
	}
	if p.HasPorts() && !ts.t.HasPorts {
		return fmt.Errorf("%w: %s tuple lacks sport/dport", ErrMissingTuple, which)
	}
	if p.IsICMP() && !(ts.seen("type") && ts.seen("code")) {
		return fmt.Errorf("%w: %s tuple lacks type/code", ErrMissingTuple, which)
	}
	return nil
}

// ParseLine parses one conntrack entry.
func ParseLine(line string) (Flow, error) {
	var f Flow
	toks := tokenize(line)
	i := 0
	next := func() (string, bool) {
		if i < len(toks) {
			return toks[i], true
		}
		return "", false
	}
	// conntrack -E event prefix.
	if t, ok := next(); ok && (t == "[NEW]" || t == "[UPDATE]" || t == "[DESTROY]") {
		f.Event = strings.Trim(t, "[]")
		i++
	}
	// -o extended / /proc/net/nf_conntrack: "ipv4 2" before the protocol.
	if i+3 < len(toks) && isWord(toks[i]) && isNumber(toks[i+1]) && isWord(toks[i+2]) && isNumber(toks[i+3]) &&
		!strings.Contains(toks[i+2], "=") && !isNumber(toks[i+2]) {
		switch toks[i] {
		case "ipv4":
			f.Family = FamilyIPv4
		case "ipv6":
			f.Family = FamilyIPv6
		}
		i += 2
	}
	name, ok := next()
	if !ok || !isWord(name) || isNumber(name) || strings.Contains(name, "=") {
		return f, fmt.Errorf("%w: no protocol name", ErrMalformed)
	}
	f.Proto = Proto(name)
	i++
	num, ok := next()
	if !ok || !isNumber(num) {
		return f, fmt.Errorf("%w: no protocol number after %q", ErrMalformed, name)
	}
	pn, err := strconv.ParseUint(num, 10, 8)
	if err != nil {
		return f, fmt.Errorf("%w: protocol number %q: %w", ErrBadValue, num, err)
	}
	f.ProtoNum = uint8(pn)
	i++
	if t, ok := next(); ok && isNumber(t) {
		v, err := strconv.ParseUint(t, 10, 32)
		if err != nil {
			return f, fmt.Errorf("%w: timeout %q: %w", ErrBadValue, t, err)
		}
		f.Timeout, f.HasTimeout = uint32(v), true
		i++
	}
	if t, ok := next(); ok && isWord(t) && !strings.Contains(t, "=") && strings.ToUpper(t) == t {
		f.State = State(t)
		i++
	}

	orig := &tupleState{t: &f.Orig}
	reply := &tupleState{t: &f.Reply}
	cur := orig
	phase := 0 // 0: original tuple, 1: reply tuple, 2: after the tuples
	for ; i < len(toks); i++ {
		t := toks[i]
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			inner := t[1 : len(t)-1]
			switch Flag(inner) {
			case FlagUnreplied, FlagAssured, FlagOffload, FlagHWOffload:
				f.Flags = append(f.Flags, Flag(inner))
			default:
				f.Other = append(f.Other, t)
			}
			if phase == 1 && Flag(inner) != FlagUnreplied {
				phase = 2
			}
			continue
		}
		key, val, ok := strings.Cut(t, "=")
		if !ok || key == "" {
			return f, fmt.Errorf("%w: unexpected token %q", ErrMalformed, t)
		}
		if key == "src" {
			switch {
			case phase == 0 && !orig.seen("src"):
			case phase == 0 || (phase == 1 && !reply.seen("src")):
				phase, cur = 1, reply
			default:
				return f, fmt.Errorf("%w: third tuple", ErrMalformed)
			}
		}
		inTuple := isTupleKey(key, f.Proto) && phase < 2
		if key == "id" && inTuple && cur.seen("id") {
			inTuple = false // the conntrack id (-o id), not an ICMP id
		}
		if (key == "zone-orig" && phase != 0) || (key == "zone-reply" && phase != 1) {
			inTuple = false
		}
		if inTuple && cur.seen(key) && (key == "packets" || key == "bytes") {
			inTuple = false
		}
		if inTuple {
			if err := cur.set(key, val); err != nil {
				return f, err
			}
			continue
		}
		if phase == 1 {
			phase = 2
		}
		if err := f.setFlowField(key, val, t); err != nil {
			return f, err
		}
	}
	if err := orig.complete(f.Proto, "original"); err != nil {
		return f, err
	}
	if err := reply.complete(f.Proto, "reply"); err != nil {
		return f, err
	}
	fam := FamilyIPv4
	if f.Orig.Src.Is6() && !f.Orig.Src.Is4In6() {
		fam = FamilyIPv6
	}
	if f.Family != "" && f.Family != fam {
		return f, fmt.Errorf("%w: %s prefix with %s addresses", ErrBadValue, f.Family, fam)
	}
	f.Family = fam
	return f, nil
}

func (f *Flow) setFlowField(key, val, tok string) error {
	u32 := func() (uint32, error) {
		v, err := strconv.ParseUint(val, 0, 32)
		if err != nil {
			return 0, fmt.Errorf("%w: %s=%q: %w", ErrBadValue, key, val, err)
		}
		return uint32(v), nil
	}
	var err error
	switch key {
	case "mark":
		f.Mark, err = u32()
		f.HasMark = err == nil
	case "secmark":
		f.Secmark = val
	case "secctx":
		f.SecCtx = val
	case "zone":
		var v uint32
		v, err = u32()
		if err == nil && v > 0xffff {
			err = fmt.Errorf("%w: zone=%q", ErrBadValue, val)
		}
		f.Zone, f.HasZone = uint16(v), err == nil
	case "use":
		f.Use, err = u32()
		f.HasUse = err == nil
	case "id":
		f.ID, err = u32()
		f.HasID = err == nil
	case "helper":
		f.Helper = val
	case "delta-time":
		f.DeltaTime, err = strconv.ParseUint(val, 10, 64)
		if err != nil {
			err = fmt.Errorf("%w: %s=%q: %w", ErrBadValue, key, val, err)
		}
		f.HasDeltaTime = err == nil
	case "labels":
		if val != "" {
			f.Labels = strings.Split(val, ",")
		}
	default:
		f.Other = append(f.Other, tok)
	}
	return err
}
