package ctflow

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"
)

func TestMain(m *testing.M) {
	// The kernel tests re-run this binary in their namespaces as echo
	// servers and clients (netnstest.StartServer, RunClient), plus an ICMP
	// client of this package's own:
	//
	//	icmp    "ID,ADDR[,noreply]": send an echo request with that id
	netnstest.MaybeRunHelper(map[string]func(string) error{"icmp": ping})
	os.Exit(m.Run())
}

func startServer(t *testing.T, ns *testNS, spec string) {
	t.Helper()
	netnstest.StartServer(t, ns.Name, spec)
}

func runClient(t *testing.T, ns *testNS, mode, args string) {
	t.Helper()
	netnstest.RunClient(t, ns.Name, mode, args)
}

// ping sends one ICMP echo request with the given id over a raw socket.
func ping(args string) error {
	parts := strings.Split(args, ",")
	if len(parts) < 2 {
		return fmt.Errorf("bad icmp args %q", args)
	}
	id, err := strconv.Atoi(parts[0])
	if err != nil {
		return err
	}
	wait := len(parts) < 3 || parts[2] != "noreply"
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'p', 'i', 'n', 'g'}
	binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: net.ParseIP(parts[1])}); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if n >= 8 && buf[0] == 0 && int(binary.BigEndian.Uint16(buf[4:])) == id {
			return nil
		}
	}
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
