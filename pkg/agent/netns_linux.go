package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// scanNetns returns the network namespaces of the processes under proc
// other than the agent's own, each once, with its eth0. Namespaces
// without an eth0 (a process with only a loopback) are skipped.
func scanNetns(ctx context.Context, proc string) ([]podNetns, error) {
	self, err := nsInode(filepath.Join(proc, "self", "ns", "net"))
	if err != nil {
		// /proc/self is the agent even under another procfs root.
		if self, err = nsInode("/proc/self/ns/net"); err != nil {
			return nil, fmt.Errorf("own network namespace: %w", err)
		}
	}
	pids, err := procPIDs(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	seen := map[uint64]bool{self: true}
	var out []podNetns
	var errs []error
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		path := filepath.Join(proc, fmt.Sprint(pid), "ns", "net")
		ino, err := nsInode(path)
		if err != nil || seen[ino] {
			continue // the process ended, or a namespace already read
		}
		seen[ino] = true
		ns, ok, err := readPodNetns(path)
		if err != nil {
			if len(errs) < 5 {
				errs = append(errs, fmt.Errorf("pid %d: %w", pid, err))
			}
			continue
		}
		if ok {
			ns.pid, ns.inode = pid, ino
			out = append(out, ns)
		}
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func nsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// readPodNetns reads eth0 of the namespace at path over netlink.
func readPodNetns(path string) (podNetns, bool, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return podNetns{}, false, err
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return podNetns{}, false, err
	}
	defer nl.Close()
	link, err := nl.LinkByName("eth0")
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return podNetns{}, false, nil
		}
		return podNetns{}, false, err
	}
	addrs, err := nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return podNetns{}, false, err
	}
	ns := podNetns{path: path, ifindex: link.Attrs().Index, iflink: link.Attrs().ParentIndex}
	for _, a := range addrs {
		ip, ok := toAddr(a.IP)
		if ok && ip.IsGlobalUnicast() {
			ns.ips = append(ns.ips, ip)
		}
	}
	return ns, true, nil
}

// inNetns runs fn on a locked OS thread switched into the namespace at
// path (the host namespace when path is ""). Sockets created by fn belong
// to that namespace for their whole life.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: if switching back fails, it must die
		// with the goroutine rather than run other goroutines in the pod's
		// namespace.
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("enter %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// dial opens a connection from the namespace at path ("" : the agent's).
func dial(ctx context.Context, path, network, addr string, timeout time.Duration) (net.Conn, time.Duration, error) {
	var conn net.Conn
	var took time.Duration
	err := inNetns(path, func() error {
		d := net.Dialer{Timeout: timeout}
		t0 := time.Now()
		c, err := d.DialContext(ctx, network, addr)
		took = time.Since(t0)
		conn = c
		return err
	})
	return conn, took, err
}
