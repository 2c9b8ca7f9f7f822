package iptables

import (
	"bytes"
	"net/netip"
	"testing"
)

var benchEnv = Env{LocalAddrs: []netip.Addr{netip.MustParseAddr("10.200.0.10")}}

// BenchmarkReadBytes is the floor: one pass over the bytes counting lines.
func BenchmarkReadBytes(b *testing.B) {
	data, _ := bigDump()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if bytes.Count(data, []byte{'\n'}) == 0 {
			b.Fatal("no lines")
		}
	}
}

// BenchmarkParseIndex: Parse (structure and rule index) of the 10k dump.
func BenchmarkParseIndex(b *testing.B) {
	data, _ := bigDump()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseStrict: Parse and parse every rule of the 10k dump.
func BenchmarkParseStrict(b *testing.B) {
	data, _ := bigDump()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStrict(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKubeServicesRules: parsing the 10,002 rules of nat
// KUBE-SERVICES, the part of a one-service trace that grows with the
// number of services.
func BenchmarkKubeServicesRules(b *testing.B) {
	data, _ := bigDump()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		d, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := d.Chain("nat", "KUBE-SERVICES").Rules(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTraceOneService: Parse, then trace one ClusterIP packet (from
// a pod) to a service in the middle of KUBE-SERVICES.
func BenchmarkTraceOneService(b *testing.B) {
	data, svcs := bigDump()
	s := svcs[len(svcs)/2]
	pkt := Packet{Src: netip.MustParseAddr("10.244.200.1"), Dst: s.IP, Protocol: "tcp", SPort: 40000, DPort: s.Port}
	b.ReportAllocs()
	for b.Loop() {
		d, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		tr, err := d.Trace(HookPrerouting, pkt, benchEnv)
		if err != nil {
			b.Fatal(err)
		}
		if len(tr.Outcomes) != 3 {
			b.Fatalf("%d outcomes", len(tr.Outcomes))
		}
	}
}

// BenchmarkTraceParsedDump: tracing one more service on a dump already
// parsed and traced once (KUBE-SERVICES is then memoized).
func BenchmarkTraceParsedDump(b *testing.B) {
	data, svcs := bigDump()
	d, err := Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	s := svcs[len(svcs)/2]
	pkt := Packet{Src: netip.MustParseAddr("10.244.200.1"), Dst: s.IP, Protocol: "tcp", SPort: 40000, DPort: s.Port}
	if _, err := d.Trace(HookPrerouting, pkt, benchEnv); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Trace(HookPrerouting, pkt, benchEnv); err != nil {
			b.Fatal(err)
		}
	}
}
