package netnstest

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
)

// Kernel tests run their own test binary again inside a network namespace
// (`ip netns exec NS <test binary>`) as a small echo server or client, so
// that they need nothing but the tools a node already has. The package's
// TestMain calls MaybeRunHelper first.
const (
	helperModeEnv = "SVCPATH_NETNSTEST_HELPER"
	helperArgsEnv = "SVCPATH_NETNSTEST_ARGS"
)

// MaybeRunHelper runs the helper and exits when this process was started
// by StartServer or RunClient; otherwise it returns at once. Built-in
// modes:
//
//	serve    "tcp:ADDR,udp:ADDR,...": echo servers; prints "ready"
//	tcp      "LPORT,HOST:PORT": connect from LPORT, send, read the echo
//	syn      "LPORT,HOST:PORT": a connection attempt nobody answers
//	udp      "LPORT,HOST:PORT": send a datagram, read the echo
//	udpsend  "LPORT,HOST:PORT": send a datagram, expect nothing
//
// extra adds modes of the package's own (args as given to RunClient).
func MaybeRunHelper(extra map[string]func(args string) error) {
	mode := os.Getenv(helperModeEnv)
	if mode == "" {
		return
	}
	args := os.Getenv(helperArgsEnv)
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
		if f := extra[mode]; f != nil {
			err = f(args)
		} else {
			err = fmt.Errorf("unknown helper mode %q", mode)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
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

// helperCmd prepares the test binary as a helper inside namespace ns.
func helperCmd(ctx context.Context, t *testing.T, ns, mode, args string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"="+mode, helperArgsEnv+"="+args)
	return cmd
}

// StartServer starts a helper echo server ("serve" mode) in namespace ns
// and waits until it listens. It is killed by its PID (`ip netns exec`
// execs it, so the PID is the helper's) in t.Cleanup.
func StartServer(t *testing.T, ns, spec string) {
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
			t.Fatalf("server in %s (%s): %v: %s", ns, spec, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("server in %s (%s) not ready: %s", ns, spec, stderr.String())
	}
}

// RunClient runs a helper client in namespace ns to completion and fails
// the test when it fails.
func RunClient(t *testing.T, ns, mode, args string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := helperCmd(ctx, t, ns, mode, args).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v: %s", mode, args, ns, err, out)
	}
}
