// Command echo is the e2e lab's workload: one static binary that is both the
// backend of a Service and the client that probes it.
//
//	echo serve [-addr :8080]
//	echo get [-n N] [-timeout 5s] URL
//
// serve answers GET / with one line naming the pod and both ends of the
// connection as the server saw them:
//
//	pod=echo-7d9f local=10.244.1.5:8080 remote=10.244.2.7:41234
//
// so a client can tell which backend answered and whether the source address
// was rewritten on the way. GET /healthz answers "ok"; every other path is a
// 404. Each request is logged on stdout. SIGTERM or SIGINT shut it down.
//
// get sends N requests, each over a new TCP connection (so each one is
// load-balanced on its own), prints each answer, and exits 1 on the first
// failure: a connection error or a status other than 200. A URL without a
// scheme gets http://. Proxy variables are ignored: the lab probes the path
// to the Service itself.
//
// Build it static: CGO_ENABLED=0 go build ./hack/lab/images/echo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usage = `usage:
  echo serve [-addr :8080]
  echo get [-n N] [-timeout 5s] URL
`

// maxBody bounds the response body get reads and prints.
const maxBody = 1 << 20

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code: 0, 1 on failure,
// 2 on a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "get":
		return runGet(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "echo: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// parseFlags parses a subcommand's flags, returning the exit code to use
// when parsing ends the command (help or a usage error).
func parseFlags(fset *flag.FlagSet, args []string, wantArgs int, stderr io.Writer) (int, bool) {
	fset.SetOutput(stderr)
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fset.NArg() != wantArgs {
		fmt.Fprint(stderr, usage)
		return 2, false
	}
	return 0, true
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("echo serve", flag.ContinueOnError)
	addr := fset.String("addr", ":8080", "listen `address`")
	if code, ok := parseFlags(fset, args, 0, stderr); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger := log.New(stdout, "", log.LstdFlags|log.LUTC)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "echo: serve: %v\n", err)
		return 1
	}
	pod := podName()
	logger.Printf("serving on %s as pod=%s", ln.Addr(), pod)
	if err := serve(ctx, ln, pod, logger); err != nil {
		fmt.Fprintf(stderr, "echo: serve: %v\n", err)
		return 1
	}
	logger.Printf("shut down")
	return 0
}

// podName is $HOSTNAME, which the runtime sets to the pod's name, or else
// the host name.
func podName() string {
	if h := os.Getenv("HOSTNAME"); h != "" {
		return h
	}
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// newHandler returns the server's handler, logging each request to logger.
func newHandler(pod string, logger *log.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		local := "unknown"
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			local = a.String()
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "pod=%s local=%s remote=%s\n", pod, local, r.RemoteAddr)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		mux.ServeHTTP(sw, r)
		logger.Printf("%s %s %d remote=%s %s", r.Method, r.URL.RequestURI(), sw.status, r.RemoteAddr, time.Since(start).Round(time.Microsecond))
	})
}

// statusWriter records the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// serve answers on ln until ctx is done, then shuts down gracefully, giving
// requests in flight 5 seconds to finish.
func serve(ctx context.Context, ln net.Listener, pod string, logger *log.Logger) error {
	srv := &http.Server{
		Handler:           newHandler(pod, logger),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc: // Serve failed on its own
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func runGet(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("echo get", flag.ContinueOnError)
	n := fset.Int("n", 1, "number of requests, each on a new connection")
	timeout := fset.Duration("timeout", 5*time.Second, "timeout of each request, connecting included")
	if code, ok := parseFlags(fset, args, 1, stderr); !ok {
		return code
	}
	if *n < 1 || *timeout <= 0 {
		fmt.Fprintf(stderr, "echo: get: -n must be at least 1 and -timeout positive\n")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := get(ctx, stdout, fset.Arg(0), *n, *timeout); err != nil {
		fmt.Fprintf(stderr, "echo: get: %v\n", err)
		return 1
	}
	return 0
}

// get sends n GET requests to rawURL, each over a new TCP connection, and
// writes each response body to out, newline-terminated. It stops at the
// first request that fails to connect, times out or answers other than 200.
func get(ctx context.Context, out io.Writer, rawURL string, n int, timeout time.Duration) error {
	if !strings.Contains(rawURL, "://") {
		rawURL = "http://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: want an http:// or https:// URL with a host", rawURL)
	}
	tr := &http.Transport{
		Proxy:             nil, // straight to the target, whatever the environment says
		DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
		DisableKeepAlives: true, // a new connection for every request
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect is an answer other than 200, not something to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for i := 1; i <= n; i++ {
		body, err := getOnce(ctx, client, u.String())
		if err != nil {
			if n > 1 {
				return fmt.Errorf("request %d of %d: %w", i, n, err)
			}
			return err
		}
		if !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		if _, err := io.WriteString(out, body); err != nil {
			return err
		}
	}
	return nil
}

// getOnce performs one GET and returns the body of a 200 answer.
func getOnce(ctx context.Context, client *http.Client, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", fmt.Errorf("GET %s: reading the answer: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	return string(body), nil
}
