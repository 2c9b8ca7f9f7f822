//go:build linux

package ctcollect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"
)

// The kernel tests run this test binary again inside a network namespace
// (`ip netns exec NS <test binary>`) as a small echo server or client.
const (
	helperModeEnv = "SVCPATH_CTCOLLECT_HELPER"
	helperArgsEnv = "SVCPATH_CTCOLLECT_ARGS"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperModeEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv(helperArgsEnv)))
	}
	code := m.Run()
	cleanupBench()
	os.Exit(code)
}

// runHelper is the helper process. Modes:
//
//	serve    "tcp:ADDR,udp:ADDR,...": echo servers; prints "ready"
//	tcp      "LPORT,HOST:PORT": connect from LPORT, send, read the echo
//	syn      "LPORT,HOST:PORT": a connection attempt nobody answers
//	udp      "LPORT,HOST:PORT": send a datagram, read the echo
//	udpsend  "LPORT,HOST:PORT": send a datagram, expect nothing
func runHelper(mode, args string) int {
	var err error
	switch mode {
	case "serve":
		err = serve(args)
	case "tcp", "syn", "udp", "udpsend":
		lport, addr, ok := strings.Cut(args, ",")
		if !ok {
			err = fmt.Errorf("bad args %q", args)
			break
		}
		var port int
		if port, err = strconv.Atoi(lport); err == nil {
			err = dial(mode, port, addr)
		}
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

func serve(spec string) error {
	for _, s := range strings.Split(spec, ",") {
		proto, addr, _ := strings.Cut(s, ":")
		switch proto {
		case "tcp":
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						_ = c.SetDeadline(time.Now().Add(5 * time.Second))
						buf := make([]byte, 512)
						n, err := c.Read(buf)
						if err != nil && !errors.Is(err, io.EOF) {
							return
						}
						_, _ = c.Write(buf[:n])
					}()
				}
			}()
		case "udp":
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return err
			}
			go func() {
				buf := make([]byte, 512)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = pc.WriteTo(buf[:n], from)
				}
			}()
		default:
			return fmt.Errorf("bad listen spec %q", s)
		}
	}
	fmt.Println("ready")
	select {}
}

func dial(mode string, lport int, addr string) error {
	switch mode {
	case "tcp", "syn":
		d := net.Dialer{LocalAddr: &net.TCPAddr{Port: lport}, Timeout: 3 * time.Second}
		if mode == "syn" {
			d.Timeout = time.Second
		}
		c, err := d.Dial("tcp", addr)
		if mode == "syn" {
			if err == nil {
				c.Close()
				return errors.New("unexpected answer")
			}
			return nil
		}
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "ping" {
			return fmt.Errorf("bad echo %q", buf[:n])
		}
		return nil
	case "udp", "udpsend":
		ra, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err := net.DialUDP("udp", &net.UDPAddr{Port: lport}, ra)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		if mode == "udpsend" {
			return nil
		}
		buf := make([]byte, 16)
		_, err = c.Read(buf)
		return err
	}
	return fmt.Errorf("bad dial mode %q", mode)
}

// helperCmd prepares the test binary as a helper inside ns.
func helperCmd(ctx context.Context, t *testing.T, ns *netnstest.NS, mode, args string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"="+mode, helperArgsEnv+"="+args)
	return cmd
}

// startServer starts a helper server in ns and waits until it listens. It
// is killed by its PID (`ip netns exec` execs it) in t.Cleanup.
func startServer(t *testing.T, ns *netnstest.NS, spec string) {
	t.Helper()
	cmd := helperCmd(context.Background(), t, ns, "serve", spec)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("server in %s (%s): %v: %s", ns.Name, spec, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("server in %s (%s) not ready: %s", ns.Name, spec, stderr.String())
	}
}

// runClient runs a helper client in ns to completion.
func runClient(t *testing.T, ns *netnstest.NS, mode, args string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := helperCmd(ctx, t, ns, mode, args).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v: %s", mode, args, ns.Name, err, out)
	}
}
