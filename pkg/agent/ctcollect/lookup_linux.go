//go:build linux

package ctcollect

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Lookup returns the `conntrack -L` line of the one flow whose original
// tuple is proto ("tcp", "udp" or "sctp", any case) from src to dst, read
// from the namespace opts.NetNS names; "" and no error when there is none.
// It asks the kernel for that tuple in conntrack zone 0 (a hash lookup,
// not a dump), so it is cheap whatever the table's size; use= is printed
// as a dump shows it, without the reference the lookup itself holds. The agent's --verify uses it to show
// the entry its own connection created.
func Lookup(opts Options, proto string, src, dst netip.AddrPort) (string, error) {
	p, err := protoNumber(proto)
	if err != nil || p == 0 {
		return "", fmt.Errorf("%w: %q", ErrProtocol, proto)
	}
	src = netip.AddrPortFrom(src.Addr().Unmap().WithZone(""), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap().WithZone(""), dst.Port())
	if !src.Addr().IsValid() || !dst.Addr().IsValid() || src.Addr().Is4() != dst.Addr().Is4() {
		return "", fmt.Errorf("lookup %s %s -> %s: addresses of one family needed", strings.ToLower(proto), src, dst)
	}
	req, err := getRequest(p, src, dst)
	if err != nil {
		return "", err
	}
	s, err := dialSock(opts.NetNS)
	if err != nil {
		return "", err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()

	var line string
	var mi msgInfo
	err = s.request(ctx, req, func(h msgHeader, data []byte) error {
		if err := scanMessage(data, &mi); err != nil {
			return err
		}
		f, err := decodeFlow(h, data)
		if err != nil {
			return err
		}
		// The kernel holds a reference of its own while it answers a
		// get (ctnetlink_get_conntrack: nf_conntrack_find_get ...
		// nf_ct_put), which a dump does not; print the use a dump
		// would show.
		if f.Use > 0 {
			f.Use--
		}
		line = string(appendFlow(nil, &f, mi.attrs, time.Now()))
		return nil
	})
	if errors.Is(err, syscall.ENOENT) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("conntrack lookup %s %s -> %s: %w", strings.ToLower(proto), src, dst, err)
	}
	return line, nil
}
