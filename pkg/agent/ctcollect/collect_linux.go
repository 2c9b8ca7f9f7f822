//go:build linux

package ctcollect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// Options say where Collect reads and what it keeps.
type Options struct {
	// NetNS is an open file descriptor of the network namespace whose
	// table to read (the netlink socket is created in it); 0 reads the
	// caller's.
	NetNS int
	// Targets select the flows: see Collect.
	Targets []agentapi.Target
	// All writes every flow (still streamed, never held in memory);
	// Targets are then ignored.
	All bool
	// Limit caps the flows written: 0 is agentapi.DefaultConntrackLimit,
	// a negative value means no cap.
	Limit int

	// noKernelFilter reads whole dumps and selects in Go only (tests and
	// benchmarks of the fallback).
	noKernelFilter bool
}

// maxFilteredDumps bounds the kernel-filtered dumps of one address family.
// Each walks the whole hash table in the kernel (about 15 ms at 262,144
// entries, against about 0.3 s for reading the whole table once), so past
// this many selections one unfiltered dump filtered in Go is cheaper.
const maxFilteredDumps = 24

// Collect writes the flows of opts.Targets to w as `conntrack -L` lines,
// one per flow, deduplicated by conntrack id, at most opts.Limit of them,
// and returns the table's statistics with what was written.
//
// For every Target it selects the flows whose original destination is
// Target.IP (and whose destination port and protocol are Target.Port and
// Target.Protocol when set). For a Target with Role agentapi.RoleEndpoint
// it also selects the flows whose reply source is the address (connections
// DNATed to the endpoint, with the same port and protocol test on the reply
// source port) and the flows whose original source is the address (the
// endpoint's own outgoing and hairpin connections, any port and protocol).
//
// Each selection is one dump the kernel filters (CTA_FILTER); the same
// selection is applied again in Go, and a kernel that does not filter is
// detected and its dump filtered in Go for every selection at once
// (KernelFiltered is then false). ctx cancellation interrupts the dump
// between messages and while waiting for the kernel.
//
// A returned error means something failed: w may then hold a part of the
// flows, and the statistics what could be read.
func Collect(ctx context.Context, opts Options, w io.Writer) (agentapi.ConntrackStats, error) {
	st, _, err := collect(ctx, opts, w)
	return st, err
}

// runInfo tells tests what a collection did.
type runInfo struct {
	filteredDumps int // dumps the kernel was asked to filter
	fullDumps     int // dumps of a whole family (or of everything)
	received      int // entries that crossed into user space
	fallback      bool
}

func collect(ctx context.Context, opts Options, w io.Writer) (agentapi.ConntrackStats, runInfo, error) {
	st, statsErr := Stats(opts)
	if statsErr != nil {
		statsErr = fmt.Errorf("conntrack statistics: %w", statsErr)
	}
	c := &collector{
		w:     bufio.NewWriterSize(w, 32<<10),
		limit: opts.Limit,
		now:   time.Now(),
	}
	if c.limit == 0 {
		c.limit = agentapi.DefaultConntrackLimit
	}
	err := c.run(ctx, opts)
	if ferr := c.w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write flows: %w", ferr)
	}
	st.Flows = c.written
	st.Truncated = c.truncated
	st.KernelFiltered = c.info.filteredDumps > 0 && c.info.fullDumps == 0
	return st, c.info, errors.Join(err, statsErr)
}

// collector writes the selected flows of one Collect call.
type collector struct {
	w         *bufio.Writer
	limit     int
	now       time.Time
	seen      map[flowKey]struct{} // nil: no deduplication (one dump)
	written   int
	truncated bool
	info      runInfo
	mi        msgInfo
	line      []byte
}

// errUnreliable ends a filtered dump whose entries do not all match its
// filter: the kernel filtered wrongly, so a whole dump replaces it.
var errUnreliable = errors.New("kernel filter returned an entry that does not match")

func (c *collector) run(ctx context.Context, opts Options) error {
	var sels []selection
	if !opts.All {
		var err error
		if sels, err = selections(opts.Targets); err != nil {
			return err
		}
		if len(sels) == 0 {
			return nil
		}
		c.seen = make(map[flowKey]struct{})
	}
	s, err := dialSock(opts.NetNS)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()

	if opts.All {
		return c.fullDump(ctx, s, 0, nil)
	}
	caps := kernelCapabilities()
	for _, fam := range []uint8{afInet, afInet6} {
		if c.truncated {
			return nil
		}
		var fs []selection
		for _, sel := range sels {
			if sel.family() == fam {
				fs = append(fs, sel)
			}
		}
		if len(fs) == 0 {
			continue
		}
		if opts.noKernelFilter || len(fs) > maxFilteredDumps || !caps.canFilter(fs) {
			if err := c.fullDump(ctx, s, fam, fs); err != nil {
				return err
			}
			continue
		}
		covered, err := c.filteredDumps(ctx, s, fam, fs)
		if err != nil {
			return err
		}
		if !covered && !c.truncated {
			c.info.fallback = true
			if err := c.fullDump(ctx, s, fam, fs); err != nil {
				return err
			}
		}
	}
	return nil
}

// filteredDumps runs one kernel-filtered dump per selection. It reports
// covered=false when the kernel's filtering cannot be trusted and a whole
// dump of the family must be read instead.
//
// Filtering on IPv6 addresses is inverted in the kernel (at least up to
// Linux 6.18, ctnetlink_filter_match_tuple drops the entries whose address
// equals the filter's: it tests !ipv6_addr_cmp, which is true on
// equality), so an IPv6 filter is trusted only once a dump returned an
// entry that matches it; a dump that returned nothing proves nothing, and
// if no dump of the family proved the filter, a whole dump is read.
func (c *collector) filteredDumps(ctx context.Context, s *sock, fam uint8, fs []selection) (covered bool, err error) {
	proven := fam == afInet
	for i := range fs {
		sel := &fs[i]
		kern := sel.kernelPart()
		req, err := dumpRequest(fam, &kern)
		if err != nil {
			return false, err
		}
		c.info.filteredDumps++
		whole := false // the kernel ignored the filter: this is a whole dump
		err = s.request(ctx, req, func(h msgHeader, data []byte) error {
			c.info.received++
			if err := scanMessage(data, &c.mi); err != nil {
				return err
			}
			if h.Flags&nlmFDumpFiltd == 0 {
				whole = true
			}
			if whole {
				return c.keepIf(h, data, matchAny(fs, &c.mi))
			}
			if !kern.match(&c.mi) {
				return errUnreliable
			}
			proven = true
			return c.keepIf(h, data, sel.match(&c.mi))
		})
		var kerr *kernelError
		switch {
		case errors.Is(err, errStop):
			return true, nil
		case errors.Is(err, errUnreliable):
			return false, nil
		case errors.As(err, &kerr) && (kerr.errno == syscall.EINVAL || kerr.errno == syscall.EOPNOTSUPP):
			return false, nil // the kernel refused the filter
		case err != nil:
			return false, fmt.Errorf("conntrack dump (%s): %w", sel, err)
		}
		if whole {
			// That dump held the whole family and was filtered in Go
			// for every selection.
			c.info.filteredDumps--
			c.info.fullDumps++
			return true, nil
		}
	}
	return proven, nil
}

// fullDump reads every entry of family fam (0: all) and keeps those any of
// fs selects (fs nil: all of them).
func (c *collector) fullDump(ctx context.Context, s *sock, fam uint8, fs []selection) error {
	req, err := dumpRequest(fam, nil)
	if err != nil {
		return err
	}
	c.info.fullDumps++
	err = s.request(ctx, req, func(h msgHeader, data []byte) error {
		c.info.received++
		if err := scanMessage(data, &c.mi); err != nil {
			return err
		}
		return c.keepIf(h, data, fs == nil || matchAny(fs, &c.mi))
	})
	if errors.Is(err, errStop) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("conntrack dump: %w", err)
	}
	return nil
}

func matchAny(fs []selection, mi *msgInfo) bool {
	for i := range fs {
		if fs[i].match(mi) {
			return true
		}
	}
	return false
}

func (c *collector) keepIf(h msgHeader, data []byte, ok bool) error {
	if !ok {
		return nil
	}
	return c.keep(h, data)
}

// keep writes the entry c.mi was scanned from, unless it was written
// before; at the Limit it returns errStop.
func (c *collector) keep(h msgHeader, data []byte) error {
	if c.seen != nil {
		if _, dup := c.seen[c.mi.key()]; dup {
			return nil
		}
	}
	if c.limit >= 0 && c.written >= c.limit {
		c.truncated = true
		return errStop
	}
	if c.seen != nil {
		c.seen[c.mi.key()] = struct{}{}
	}
	f, err := decodeFlow(h, data)
	if err != nil {
		// Keep the evidence that the entry exists: ctflow skips
		// comment lines.
		c.line = append(c.line[:0], "# ctcollect: undecodable conntrack entry id="...)
		c.line = strconv.AppendUint(c.line, uint64(c.mi.id), 10)
		c.line = append(c.line, ": "...)
		c.line = append(c.line, strings.ReplaceAll(err.Error(), "\n", " ")...)
		c.line = append(c.line, '\n')
		_, err = c.w.Write(c.line)
		return err
	}
	c.line = appendFlow(c.line[:0], &f, c.mi.attrs, c.now)
	c.line = append(c.line, '\n')
	if _, err := c.w.Write(c.line); err != nil {
		return fmt.Errorf("write flows: %w", err)
	}
	c.written++
	return nil
}

// decodeFlow decodes one entry with ti-mo/conntrack. Entries of a dump
// are IPCTNL_MSG_CT_NEW messages; the type is set so that Event.Unmarshal
// accepts replies to a get as well.
func decodeFlow(h msgHeader, data []byte) (conntrack.Flow, error) {
	var ev conntrack.Event
	err := ev.Unmarshal(netlink.Message{
		Header: netlink.Header{
			Length:   h.Len,
			Type:     netlink.HeaderType(nfnlSubsysCTNetlink<<8 | ipctnlMsgCTNew),
			Flags:    netlink.HeaderFlags(h.Flags),
			Sequence: h.Seq,
			PID:      h.Pid,
		},
		Data: data,
	})
	if err != nil {
		return conntrack.Flow{}, err
	}
	if ev.Flow == nil {
		return conntrack.Flow{}, fmt.Errorf("%w: not a conntrack entry", errMalformed)
	}
	return *ev.Flow, nil
}

// kernelCaps are the dump filters this kernel implements correctly.
type kernelCaps struct {
	// filter: CTA_FILTER on tuples (Linux 5.8, cb8aa9a3affb "netfilter:
	// ctnetlink: add kernel side filtering for dump").
	filter bool
	// replyFilter: CTA_FILTER_REPLY_FLAGS; before Linux 5.15 the reply
	// tuple was parsed with the original flags, so a reply-only filter
	// matched nothing ("netfilter: ctnetlink: fix filtering with
	// CTA_TUPLE_REPLY").
	replyFilter bool
}

func kernelCapabilities() kernelCaps {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernelCaps{}
	}
	major, minor := parseRelease(unix.ByteSliceToString(u.Release[:]))
	v := major*1000 + minor
	return kernelCaps{filter: v >= 5008, replyFilter: v >= 5015}
}

// parseRelease reads "6.18.44-fc-v669" as 6, 18.
func parseRelease(r string) (major, minor int) {
	parts := strings.SplitN(r, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	major, _ = strconv.Atoi(parts[0])
	m := parts[1]
	for i, ch := range m {
		if ch < '0' || ch > '9' {
			m = m[:i]
			break
		}
	}
	minor, _ = strconv.Atoi(m)
	return major, minor
}

func (k kernelCaps) canFilter(fs []selection) bool {
	if !k.filter {
		return false
	}
	for _, s := range fs {
		if s.field == replySrc && !k.replyFilter {
			return false
		}
	}
	return true
}
