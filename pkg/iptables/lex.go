package iptables

import (
	"errors"
	"strings"
)

// token is one word of a rule line, as iptables-restore splits it: runs of
// blanks separate words; a double quote opens a quoted part in which a
// backslash escapes the next character; a closing quote ends the word.
type token struct {
	s      string
	quoted bool  // some part of the word was quoted
	gap    uint8 // number of spaces before the word when more than one (else 0)
}

var errUnterminatedQuote = errors.New("unterminated quote")

// tokenize splits line into words, appending to buf. Words are substrings of
// line unless they contain escapes or mix quoted and unquoted parts.
func tokenize(line string, buf []token) ([]token, error) {
	toks := buf[:0]
	i, n := 0, len(line)
	spaces := 0
	for i < n {
		c := line[i]
		if c == ' ' || c == '\t' {
			if c == ' ' && spaces >= 0 {
				spaces++
			} else {
				spaces = -1 // a tab: not reproduced
			}
			i++
			continue
		}
		var gap uint8
		if spaces > 1 && spaces < 256 {
			gap = uint8(spaces)
		}
		spaces = 0
		start := i
		// Fast path: a plain word.
		for i < n && line[i] != ' ' && line[i] != '\t' && line[i] != '"' {
			i++
		}
		if i == n || line[i] != '"' {
			toks = append(toks, token{s: line[start:i], gap: gap})
			continue
		}
		// A quote inside or at the start of the word.
		if i == start {
			// Fast path: "..." without escapes.
			j := i + 1
			for j < n && line[j] != '"' && line[j] != '\\' {
				j++
			}
			if j < n && line[j] == '"' {
				toks = append(toks, token{s: line[i+1 : j], quoted: true, gap: gap})
				i = j + 1
				continue
			}
		}
		var sb strings.Builder
		sb.WriteString(line[start:i])
		i++ // opening quote
		closed := false
		for i < n {
			c := line[i]
			if c == '\\' && i+1 < n {
				sb.WriteByte(line[i+1])
				i += 2
				continue
			}
			if c == '"' {
				closed = true
				i++
				break
			}
			sb.WriteByte(c)
			i++
		}
		if !closed {
			return toks, errUnterminatedQuote
		}
		toks = append(toks, token{s: sb.String(), quoted: true, gap: gap})
	}
	return toks, nil
}

// needsQuote tells whether xtables_save_string would quote s.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return true
		}
	}
	return false
}

// writeWord appends a word the way iptables-save prints it: quoted (with
// ", \ and ' escaped) when it was quoted in the input or cannot be read back
// unquoted.
func writeWord(sb *strings.Builder, s string, quoted bool) {
	if !quoted && s != "" && !strings.ContainsAny(s, " \t\"") {
		sb.WriteString(s)
		return
	}
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '\'':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('"')
}
