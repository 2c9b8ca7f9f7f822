//go:build linux

package ctcollect

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// recvBufSize holds any datagram of a dump: the kernel sizes dump skbs by
// the reader's largest recvmsg, capped below 32 KiB (net/netlink/af_netlink.c
// netlink_recvmsg, netlink_dump). A larger one would be reported by
// MSG_TRUNC.
const recvBufSize = 32 << 10

// sock is a NETLINK_NETFILTER socket read as a stream. mdlayher/netlink's
// Conn.Receive gathers a whole multi-part reply before returning it (the
// memory ti-mo/conntrack's Dump spends); sock only uses the Conn to dial
// (in the wanted netns) and send, and reads one datagram at a time into a
// reused buffer. Each sock serves one request: a dump ended early leaves
// its remaining messages on the socket.
type sock struct {
	nl  *netlink.Conn
	rc  syscall.RawConn
	buf []byte
}

func dialSock(netns int) (*sock, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	rc, err := nl.SyscallConn()
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("netlink raw conn: %w", err)
	}
	return &sock{nl: nl, rc: rc, buf: make([]byte, recvBufSize)}, nil
}

func (s *sock) Close() error { return s.nl.Close() }

// interrupt makes a blocked read return (ctx cancellation).
func (s *sock) interrupt() { _ = s.nl.SetReadDeadline(time.Unix(1, 0)) }

// msgHeader is a received nlmsghdr.
type msgHeader struct {
	Len   uint32
	Type  uint16
	Flags uint16
	Seq   uint32
	Pid   uint32
}

// request sends one ctnetlink request and calls fn with each entry of the
// reply until NLMSG_DONE (dumps) or the first entry (single gets). fn may
// return errStop to end early. A kernel error is returned as a
// syscall.Errno wrapped in *kernelError.
func (s *sock) request(ctx context.Context, m netlink.Message, fn func(h msgHeader, data []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sent, err := s.nl.Send(m)
	if err != nil {
		return fmt.Errorf("send ctnetlink request: %w", err)
	}
	dump := m.Header.Flags&netlink.Dump == netlink.Dump
	for {
		n, err := s.recv(ctx)
		if err != nil {
			return err
		}
		b := s.buf[:n]
		for len(b) >= nlmsgHdrLen {
			h := msgHeader{
				Len:   binary.NativeEndian.Uint32(b[0:4]),
				Type:  binary.NativeEndian.Uint16(b[4:6]),
				Flags: binary.NativeEndian.Uint16(b[6:8]),
				Seq:   binary.NativeEndian.Uint32(b[8:12]),
				Pid:   binary.NativeEndian.Uint32(b[12:16]),
			}
			if h.Len < nlmsgHdrLen || int(h.Len) > len(b) {
				return fmt.Errorf("%w: message length %d of %d bytes", errMalformed, h.Len, len(b))
			}
			data := b[nlmsgHdrLen:h.Len]
			next := int((h.Len + 3) &^ 3)
			if next > len(b) {
				next = len(b)
			}
			b = b[next:]
			if h.Seq != sent.Header.Sequence {
				continue // a reply to an earlier request
			}
			switch {
			case h.Type == nlmsgDone:
				if len(data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(data)); e < 0 {
						return &kernelError{errno: syscall.Errno(-e)}
					}
				}
				return nil
			case h.Type == nlmsgError:
				if len(data) < 4 {
					return fmt.Errorf("%w: short NLMSG_ERROR", errMalformed)
				}
				e := int32(binary.NativeEndian.Uint32(data))
				if e == 0 {
					continue // an acknowledgement
				}
				return &kernelError{errno: syscall.Errno(-e)}
			case h.Type>>8 != nfnlSubsysCTNetlink:
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(h, data); err != nil {
				return err
			}
			if !dump {
				return nil
			}
		}
	}
}

// recv reads one datagram into s.buf, waiting in the runtime poller (so
// interrupt and read deadlines apply).
func (s *sock) recv(ctx context.Context) (int, error) {
	var n, rflags int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			n, _, rflags, _, rerr = unix.Recvmsg(int(fd), s.buf, nil, unix.MSG_DONTWAIT)
			if !errors.Is(rerr, unix.EINTR) {
				break
			}
		}
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("read ctnetlink: %w", err)
	}
	if rflags&unix.MSG_TRUNC != 0 {
		return 0, fmt.Errorf("%w: datagram larger than %d bytes", errMalformed, len(s.buf))
	}
	return n, nil
}

// kernelError is an error the kernel answered a request with.
type kernelError struct{ errno syscall.Errno }

func (e *kernelError) Error() string { return "ctnetlink: " + e.errno.Error() }
func (e *kernelError) Unwrap() error { return e.errno }

// ctMessage builds a ctnetlink request: nfgenmsg (family, version 0,
// res_id 0) followed by attrs.
func ctMessage(msgType uint8, flags netlink.HeaderFlags, family uint8, attrs []byte) netlink.Message {
	data := make([]byte, nfgenmsgLen, nfgenmsgLen+len(attrs))
	data[0] = family
	data = append(data, attrs...)
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysCTNetlink<<8 | uint16(msgType)),
			Flags: flags,
		},
		Data: data,
	}
}

// testExtraFilterFlags are added to every filter's flags by tests, to have
// the kernel refuse a filter.
var testExtraFilterFlags uint32

// dumpRequest is a dump of family (0: both) the kernel filters by kf
// when kf is not nil.
//
// The filter (ctnetlink_alloc_filter) is CTA_FILTER {CTA_FILTER_ORIG_FLAGS:
// u32 in host order} naming the fields of the original tuple to compare,
// with their values in CTA_TUPLE_ORIG (big endian, like every ctnetlink
// value). Ports need CTA_FILTER_F_PROTO_NUM (ctnetlink_parse_tuple_filter);
// an address is read only when an address flag is set, so a filter on
// protocol and port alone carries no CTA_TUPLE_IP. The kernel compares
// ports for TCP and UDP only (ctnetlink_filter_match_tuple).
func dumpRequest(family uint8, kf *kernelFilter) (netlink.Message, error) {
	if kf == nil {
		return ctMessage(ipctnlMsgCTGet, netlink.Request|netlink.Dump, family, nil), nil
	}
	var flags uint32
	if kf.addr.IsValid() {
		flags |= filterIPDst
	}
	withPort := kf.port != 0 && (kf.proto == protoTCP || kf.proto == protoUDP)
	if kf.proto != 0 {
		flags |= filterProtoNum
		if withPort {
			flags |= filterDstPort
		}
	}
	if flags == 0 {
		return netlink.Message{}, fmt.Errorf("empty kernel filter %s", kf)
	}
	flags |= testExtraFilterFlags
	ipType := uint16(ctaIPv4Dst)
	if kf.addr.Is6() {
		ipType = ctaIPv6Dst
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ctaTupleOrig, func(t *netlink.AttributeEncoder) error {
		if kf.addr.IsValid() {
			t.Nested(ctaTupleIP, func(ip *netlink.AttributeEncoder) error {
				ip.Bytes(ipType, kf.addr.AsSlice())
				return nil
			})
		}
		if kf.proto != 0 {
			t.Nested(ctaTupleProto, func(p *netlink.AttributeEncoder) error {
				p.Uint8(ctaProtoNum, kf.proto)
				if withPort {
					p.Bytes(ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, kf.port))
				}
				return nil
			})
		}
		return nil
	})
	ae.Nested(ctaFilter, func(f *netlink.AttributeEncoder) error {
		f.Uint32(ctaFilterOrigFlags, flags) // NLA_U32, host order
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, err
	}
	return ctMessage(ipctnlMsgCTGet, netlink.Request|netlink.Dump, family, attrs), nil
}

// getRequest asks for the one entry whose original tuple is
// proto src -> dst (IPCTNL_MSG_CT_GET without NLM_F_DUMP: the kernel
// parses the whole tuple, ctnetlink_get_conntrack).
func getRequest(proto uint8, src, dst netip.AddrPort) (netlink.Message, error) {
	family := uint8(afInet)
	srcType, dstType := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
	if src.Addr().Is6() {
		family, srcType, dstType = afInet6, ctaIPv6Src, ctaIPv6Dst
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ctaTupleOrig, func(t *netlink.AttributeEncoder) error {
		t.Nested(ctaTupleIP, func(ip *netlink.AttributeEncoder) error {
			ip.Bytes(srcType, src.Addr().AsSlice())
			ip.Bytes(dstType, dst.Addr().AsSlice())
			return nil
		})
		t.Nested(ctaTupleProto, func(p *netlink.AttributeEncoder) error {
			p.Uint8(ctaProtoNum, proto)
			p.Bytes(ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, src.Port()))
			p.Bytes(ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, dst.Port()))
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, err
	}
	return ctMessage(ipctnlMsgCTGet, netlink.Request, family, attrs), nil
}
