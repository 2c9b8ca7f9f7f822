package nft

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"
)

func sample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/v134-nft-list-table.txt")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTextSample(t *testing.T) {
	rs, err := Parse(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	tb := rs.Table("ip", KubeProxyTable)
	if tb == nil || tb.Comment != "rules for kube-proxy" || tb.Line != 1 {
		t.Fatalf("table: %+v", tb)
	}
	if len(tb.Sets) != 6 || len(tb.Chains) != 21 {
		t.Errorf("%d sets, %d chains; want 6 and 21", len(tb.Sets), len(tb.Chains))
	}
	m := tb.Set("service-ips")
	if m == nil || !m.Map || len(m.Elements) != 2 {
		t.Fatalf("service-ips: %+v", m)
	}
	e := m.Elements[0]
	if strings.Join(e.Key, "|") != "10.96.0.100|tcp|80" || e.Value != "goto service-SUSTUHLJ-default/web/tcp/http" || e.Line != 27 {
		t.Errorf("element: %+v", e)
	}
	if e2 := m.Elements[1]; strings.Join(e2.Key, "|") != "10.96.0.1|tcp|443" || e2.Line != 27 {
		t.Errorf("second element (on a continuation line, reported at the elements line): %+v", e2)
	}
	if s := tb.Set("cluster-ips"); s == nil || s.Map || len(s.Elements) != 2 || s.Type != "ipv4_addr" {
		t.Errorf("cluster-ips: %+v", s)
	}
	c := tb.Chain("nat-prerouting")
	if c == nil || c.Type != "nat" || c.Hook != "prerouting" || c.Priority != "dstnat" || c.Policy != "accept" || len(c.Rules) != 1 {
		t.Fatalf("nat-prerouting: %+v", c)
	}
	if got := c.Header(); got != "chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }" {
		t.Errorf("header %q", got)
	}
	if c := tb.Chain("filter-prerouting-pre-dnat"); c.Priority != "dstnat - 10" {
		t.Errorf("priority %q", c.Priority)
	}
	rc := tb.Chain("reject-chain")
	if rc.Comment != "helper for @no-endpoint-services / @no-endpoint-nodeports" || len(rc.Rules) != 1 || rc.Rules[0].Text != "reject" {
		t.Errorf("reject-chain: %+v %+v", rc, rc.Rules)
	}
	svc := tb.Chain("service-SUSTUHLJ-default/web/tcp/http")
	if svc == nil || len(svc.Rules) != 2 || !strings.HasPrefix(svc.Rules[1].Text, "numgen random mod 2 vmap {") {
		t.Fatalf("service chain: %+v", svc)
	}
}

func TestHandlesAndMultilineRules(t *testing.T) {
	in := `table ip kube-proxy { # handle 7
	set affinity-X {
		type ipv4_addr
		flags dynamic,timeout
		timeout 3h
		elements = { 10.0.0.5 timeout 3h expires 2h59m50s }
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump service-X-ns/a/tcp/p
	}
	chain service-X-ns/a/tcp/p { # handle 3
		ip saddr @affinity-X goto endpoint-A # handle 4
		numgen random mod 2 vmap { 0 : goto endpoint-A,
					   1 : goto endpoint-B } # handle 5
	}
	chain endpoint-A {
		update @affinity-X { ip saddr }
		meta l4proto tcp dnat to 10.1.0.1:80
	}
	chain endpoint-B {
		meta l4proto tcp dnat to 10.1.0.2:80
	}
}
`
	rs, err := ParseText([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	tb := rs.Table("ip", "kube-proxy")
	c := tb.Chain("service-X-ns/a/tcp/p")
	if len(c.Rules) != 2 || c.Rules[0].Handle != 4 || c.Rules[1].Handle != 5 || c.Rules[1].Line != 14 {
		t.Fatalf("rules: %+v %+v", c.Rules[0], c.Rules[1])
	}
	if s := tb.Set("affinity-X"); len(s.Flags) != 2 || len(s.Elements) != 1 || s.Elements[0].Key[0] != "10.0.0.5" {
		t.Errorf("affinity set: %+v", s)
	}
	tr, err := Translate(tb, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-A service-X-ns/a/tcp/p -m recent --rcheck --name affinity-X --mask 255.255.255.255 --rsource -g endpoint-A",
		"-A service-X-ns/a/tcp/p -m statistic --mode random --probability 0.50000000000 -g endpoint-A",
		"-A service-X-ns/a/tcp/p -g endpoint-B",
		"-A endpoint-A -p tcp -j DNAT --to-destination 10.1.0.1:80",
	}
	for _, w := range want {
		if !strings.Contains(string(tr.Text), w+"\n") {
			t.Errorf("translation lacks %q:\n%s", w, tr.Text)
		}
	}
	if len(tr.Unmodelled) != 0 {
		t.Errorf("unmodelled: %v", tr.Unmodelled)
	}
}

// The translated rules quote the nft rule (and element) and its line.
func TestTranslationOrigins(t *testing.T) {
	rs, err := Parse(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Translate(rs.Table("ip", KubeProxyTable), nil)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := tr.Dump.Chain("nat", "services").Rules()
	if err != nil || len(rules) != 2 {
		t.Fatalf("services: %v %v", rules, err)
	}
	if want := "ip daddr . meta l4proto . th dport vmap @service-ips ⟵ element ip kube-proxy service-ips { 10.96.0.100 . tcp . 80 : goto service-SUSTUHLJ-default/web/tcp/http }"; rules[0].Raw != want || rules[0].Line != 27 {
		t.Errorf("origin %q line %d", rules[0].Raw, rules[0].Line)
	}
	if rules[0].Target.Name != "service-SUSTUHLJ-default/web/tcp/http" || !rules[0].Target.Goto {
		t.Errorf("target %+v", rules[0].Target)
	}
	mm, _ := tr.Dump.Chain("nat", "masquerading").Rules()
	if len(mm) != 3 || mm[2].Raw != "masquerade fully-random" || mm[2].Line != 99 {
		for _, r := range mm {
			t.Errorf("masquerading: %q line %d", r.Raw, r.Line)
		}
	}
}

// A node's own iptables rules are kept: kube-proxy's chains go first in
// the built-in chains.
func TestTranslateMergesIPTables(t *testing.T) {
	base := `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-MASQ - [0:0]
-A POSTROUTING -s 10.244.0.0/16 -j CNI-MASQ
-A CNI-MASQ ! -d 10.244.0.0/16 -j MASQUERADE
COMMIT
`
	rs, err := Parse(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Translate(rs.Table("ip", KubeProxyTable), []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	post, _ := tr.Dump.Chain("nat", "POSTROUTING").Rules()
	if len(post) != 2 || post[0].Target.Name != "nat-postrouting" || post[1].Target.Name != "CNI-MASQ" || post[1].Raw != "-A POSTROUTING -s 10.244.0.0/16 -j CNI-MASQ" {
		t.Fatalf("POSTROUTING: %+v", post)
	}
	if tr.Dump.Chain("filter", "filter-forward") == nil || tr.Dump.Chain("mangle", "filter-prerouting-pre-dnat") == nil {
		t.Errorf("tables absent from the base are added")
	}
}

func TestParseErrors(t *testing.T) {
	full := string(sample(t))
	cases := map[string]string{
		"truncated":        full[:len(full)/2],
		"no closing brace": strings.TrimSuffix(strings.TrimSpace(full), "}"),
		"bad table":        "table {\n}\n",
		"stray line":       "table ip t {\n\tfoo bar\n}\n",
		"json garbage":     `{"nftables": [`,
		"json without":     `{"other": 1}`,
		"unbalanced rule":  "table ip t {\n\tchain c {\n\t\tip daddr { 1.2.3.4\n\t}\n}\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("want a *ParseError, got %v", err)
			}
			t.Log(err)
		})
	}
}

// FuzzParse: no input makes the parsers or the translation panic.
func FuzzParse(f *testing.F) {
	f.Add(sample(f))
	f.Add([]byte(`{"nftables":[{"table":{"family":"ip","name":"kube-proxy"}},{"chain":{"family":"ip","table":"kube-proxy","name":"c","type":"nat","hook":"prerouting","prio":-100}},{"rule":{"family":"ip","table":"kube-proxy","chain":"c","expr":[{"jump":{"target":"c"}}]}}]}`))
	f.Add([]byte("table ip kube-proxy {\n\tchain c {\n\t\ttype nat hook output priority -100; policy drop;\n\t\tip daddr != { 1.1.1.1, 2.2.2.2 } th dport 80 meta mark set meta mark | 0x10 masquerade\n\t}\n}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse(data)
		if err != nil {
			return
		}
		for _, tb := range rs.Tables {
			if tb.Family == "ip" || tb.Family == "ip6" {
				tr, err := Translate(tb, nil)
				if err == nil {
					for _, it := range tr.Dump.Tables {
						for _, c := range it.Chains {
							_, _ = c.Rules()
						}
					}
				}
			}
		}
	})
}

// TestKernelRoundTrip loads kube-proxy's ruleset into a namespace with
// `nft -f`, reads it back in text and JSON, and checks that both parse to
// the same translation as the original.
func TestKernelRoundTrip(t *testing.T) {
	netnstest.RequireKernel(t, "nft")
	ns := netnstest.New(t, "svcpath-nft")
	f := t.TempDir() + "/ruleset.nft"
	if err := os.WriteFile(f, sample(t), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.Exec("nft", "-f", f)
	text := ns.Exec("nft", "list", "ruleset")
	js := ns.Exec("nft", "-j", "list", "ruleset")
	want := translate(t, sample(t))
	for name, in := range map[string]string{"text": text, "json": js} {
		got := translate(t, []byte(in))
		if string(got.Text) != string(want.Text) {
			t.Errorf("%s: translation differs from the original's:\n%s\nwant:\n%s", name, got.Text, want.Text)
		}
		if len(got.Unmodelled) != 0 {
			t.Errorf("%s: unmodelled: %v", name, got.Unmodelled)
		}
		// The quoted rules are nft's own text.
		for _, chain := range []string{"masquerading", "services"} {
			gr, _ := got.Dump.Chain("nat", chain).Rules()
			wr, _ := want.Dump.Chain("nat", chain).Rules()
			for i := range wr {
				if gr[i].Raw != wr[i].Raw {
					t.Errorf("%s: %s rule %d quotes %q, want %q", name, chain, i, gr[i].Raw, wr[i].Raw)
				}
			}
		}
	}
}

func translate(t *testing.T, in []byte) *Translation {
	t.Helper()
	rs, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	tb := rs.Table("ip", KubeProxyTable)
	if tb == nil {
		t.Fatalf("no ip kube-proxy table in %s", in)
	}
	tr, err := Translate(tb, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// Without /etc/protocols nft prints protocol numbers (seen in a real probe
// image): "10.96.0.100 . 6 . 80", "meta l4proto 6 dnat to ...".
func TestNumericProtocols(t *testing.T) {
	num := strings.NewReplacer(" . tcp . ", " . 6 . ", "meta l4proto tcp ", "meta l4proto 6 ").Replace(string(sample(t)))
	if num == string(sample(t)) {
		t.Fatal("the sample has no protocol to number")
	}
	got, want := translate(t, []byte(num)), translate(t, sample(t))
	if string(got.Text) != string(want.Text) {
		t.Errorf("numeric protocols translate differently:\n%s\nwant:\n%s", got.Text, want.Text)
	}
}

// A focused translation keeps only the elements that packets to the
// focus can meet.
func TestTranslateFocus(t *testing.T) {
	rs, err := Parse(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &Focus{Addrs: map[netip.Addr]bool{netip.MustParseAddr("10.96.0.100"): true}, Ports: map[string]bool{}}
	tr, err := TranslateFocus(rs.Table("ip", KubeProxyTable), nil, f)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := tr.Dump.Chain("nat", "services").Rules()
	if len(svc) != 1 || svc[0].Target.Name != "service-SUSTUHLJ-default/web/tcp/http" {
		t.Fatalf("services: %+v", svc)
	}
	if tr.Dump.Chain("nat", "service-2QRHZV4L-default/kubernetes/tcp/https") != nil {
		t.Errorf("the other service's chain was translated")
	}
	// Plain sets stay whole (nodeport-ips holds node addresses, which no
	// service focus names).
	chk, _ := tr.Dump.Chain("filter", "cluster-ips-check").Rules()
	if len(chk) != 3 || chk[2].Target.Name != "DROP" {
		t.Errorf("cluster-ips-check: a reject per cluster IP, the drop: %+v", chk)
	}
	if f.Key() != "10.96.0.100" {
		t.Errorf("key %q", f.Key())
	}
}
