package main

import (
	"bytes"
	"context"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer serves on a loopback port until the test ends and returns the
// server's address and log.
func startServer(t *testing.T) (string, *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, "test-pod", log.New(logs, "", 0)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), logs
}

func TestGetNewConnectionEachTime(t *testing.T) {
	addr, logs := startServer(t)
	var out bytes.Buffer
	if err := get(context.Background(), &out, "http://"+addr+"/", 3, 5*time.Second); err != nil {
		t.Fatalf("get: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), out.String())
	}
	remotes := map[string]bool{}
	for _, line := range lines {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["pod"] != "test-pod" || fields["local"] != addr {
			t.Errorf("line %q: want pod=test-pod local=%s", line, addr)
		}
		host, port, err := net.SplitHostPort(fields["remote"])
		if err != nil || host != "127.0.0.1" || port == "" {
			t.Errorf("line %q: bad remote (%v)", line, err)
		}
		remotes[port] = true
	}
	if len(remotes) != 3 {
		t.Errorf("remote ports %v: want 3 different ones, one connection per request", remotes)
	}
	if got := strings.Count(logs.String(), "GET / 200"); got != 3 {
		t.Errorf("%d requests logged, want 3:\n%s", got, logs.String())
	}
}

func TestGetFailures(t *testing.T) {
	addr, _ := startServer(t)
	ctx := context.Background()

	var out bytes.Buffer
	if err := get(ctx, &out, addr+"/healthz", 1, 5*time.Second); err != nil || out.String() != "ok\n" {
		t.Errorf("healthz without a scheme: %q, %v", out.String(), err)
	}

	out.Reset()
	err := get(ctx, &out, "http://"+addr+"/nope", 2, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "request 1 of 2") {
		t.Errorf("404 path: err = %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("404 path printed %q", out.String())
	}

	// A port nobody listens on: take one and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if err := get(ctx, &out, "http://"+closed+"/", 1, 5*time.Second); err == nil {
		t.Error("get to a closed port succeeded")
	}
}

func TestRun(t *testing.T) {
	addr, _ := startServer(t)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"get", "-n", "2", "http://" + addr + "/"}, 0, "pod=test-pod"},
		{[]string{"get", "http://" + addr + "/missing"}, 1, ""},
		{[]string{"get"}, 2, ""},
		{[]string{"get", "-n", "0", addr}, 2, ""},
		{[]string{"serve", "extra"}, 2, ""},
		{[]string{"bogus"}, 2, ""},
		{nil, 2, ""},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.out) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d", tc.args, code, stdout.String(), stderr.String(), tc.code)
		}
		if code != 0 && stderr.Len() == 0 {
			t.Errorf("run(%q) failed without a message", tc.args)
		}
	}
}
