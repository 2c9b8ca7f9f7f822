package ctflow

import (
	"strings"
	"testing"
)

// BenchmarkParse parses a dump shaped like a busy node's: 10,000 entries.
func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 10000; i++ {
		sb.WriteString(referenceCases[i%len(referenceCases)].line)
		sb.WriteByte('\n')
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := Parse(data, ParseOptions{})
		if err != nil || len(d.Flows) != 10000 {
			b.Fatal(err)
		}
	}
}
