package ctflow

import "testing"

func FuzzParseLine(f *testing.F) {
	for _, tc := range referenceCases {
		f.Add(tc.line)
	}
	for _, tc := range reconstructedCases {
		f.Add(tc.line)
	}
	f.Add("ipv6     10 tcp      6 117 TIME_WAIT src=fd00::14 dst=fd00::100 sport=41000 dport=80 packets=6 bytes=400 src=fd00::a dst=fd00::1 sport=8080 dport=61000 packets=4 bytes=300 [ASSURED] mark=16384 use=1 id=7")
	f.Add("tcp 6 120 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=21 zone-orig=1 src=10.0.0.2 dst=10.0.0.1 sport=21 dport=1 zone-reply=2 [HW_OFFLOAD] mark=0 delta-time=12 [start=Thu Nov 21 06:07:00 2024] helper=ftp use=1 labels=a,b")
	f.Add("[DESTROY] icmp 1 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1")
	f.Fuzz(func(t *testing.T, line string) {
		fl, err := ParseLine(line)
		if err != nil {
			return
		}
		_ = fl.NAT()
		s := fl.String()
		again, err := ParseLine(s)
		if err != nil {
			t.Fatalf("String() of a parsed line does not parse: %q -> %q: %v", line, s, err)
		}
		if again.String() != s {
			t.Fatalf("String() not stable: %q -> %q", s, again.String())
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(referenceCases[0].line + "\nconntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.\n"))
	f.Add([]byte("garbage\n\n" + referenceCases[3].line))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data, ParseOptions{Lenient: true})
		if err != nil {
			t.Fatalf("lenient Parse failed: %v", err)
		}
		if _, err := Parse(data, ParseOptions{}); err == nil && d.Skipped != 0 {
			t.Fatalf("strict parse accepted what lenient skipped")
		}
	})
}
