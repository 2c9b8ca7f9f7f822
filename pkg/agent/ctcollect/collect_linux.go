//go:build linux

package ctcollect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// table to read (the netlink sockets are created in it); 0 reads the
	// namespace of the calling thread (Collect opens every socket on the
	// calling goroutine).
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
// A filtered dump still walks the whole hash table in the kernel: at
// 262,144 entries one walk took about 60 ms on the benchmark's machine,
// one unfiltered dump read and filtered in Go about 600 ms, so past about
// ten dumps the unfiltered dump is as cheap, and past this many it is
// cheaper even with dumps running concurrently.
const maxFilteredDumps = 12

// maxParallelDumps caps the filtered dumps run at once (one socket each).
// On the benchmark's two vCPUs two concurrent walks gained only 2-5% (the
// walk is bound by memory, not CPU); machines with more cores and memory
// channels are expected to gain more.
const maxParallelDumps = 4

// Collect writes the flows of opts.Targets to w as `conntrack -L` lines,
// one per flow, deduplicated by conntrack id, at most opts.Limit of them,
// and returns the table's statistics with what was written.
//
// For every Target, whatever its Role, it selects the flows whose original
// destination is Target.IP (and whose protocol and original destination
// port are Target.Protocol and Target.Port when set): the connections sent
// to a ClusterIP, external, load-balancer or node address on the service's
// ports, DNATed or not, and those sent to an endpoint's address. The
// endpoint's own outgoing connections are not selected (unless sent to a
// target), nor are connections DNATed to an endpoint from an address that
// is not a target.
//
// The kernel filters the dumps (CTA_FILTER, Linux 5.8+), each of which
// still walks the whole table, so the selections are merged into as few
// dumps as possible (kernelFilters): one per distinct protocol and TCP or
// UDP destination port of a family, filtered on protocol and port alone
// when several addresses share them (a ClusterIP on port 80 and its
// endpoints on 8080 make two dumps), and one per address for targets
// without a port. Up to maxParallelDumps dumps run at once, on sockets of
// their own. Whatever a dump returns is selected again in Go by the exact
// selections. When the kernel's filtering cannot be used or trusted (an
// older kernel, one that answers without NLM_F_DUMP_FILTERED or with
// entries the filter should have dropped, IPv6 address filters, see
// filteredDumps) or when an address family needs more than
// maxFilteredDumps dumps, the family is read in one unfiltered dump
// filtered in Go for all its selections at once, and KernelFiltered is
// false. ctx cancellation interrupts the dumps between messages and while
// waiting for the kernel.
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

// collector writes the selected flows of one Collect call. Only the
// goroutine that runs run touches it; filtered dumps run concurrently and
// hand it their entries (filteredDumps).
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
	if err := ctx.Err(); err != nil {
		return err
	}
	if opts.All {
		return c.fullDump(ctx, opts.NetNS, 0, nil)
	}
	caps := kernelCapabilities()
	parallel := min(max(runtime.GOMAXPROCS(0), 1), maxParallelDumps)
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
		var kfs []kernelFilter
		if !opts.noKernelFilter && caps.filter {
			kfs = kernelFilters(fs)
		}
		if len(kfs) == 0 || len(kfs) > maxFilteredDumps {
			if err := c.fullDump(ctx, opts.NetNS, fam, fs); err != nil {
				return err
			}
			continue
		}
		covered, err := c.filteredDumps(ctx, opts.NetNS, fam, fs, kfs, parallel)
		if err != nil {
			return err
		}
		if !covered && !c.truncated {
			c.info.fallback = true
			if err := c.fullDump(ctx, opts.NetNS, fam, fs); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry is a selected flow a dump hands to the collector: its key and its
// line (or a comment line when it could not be decoded).
type entry struct {
	key  flowKey
	line []byte
	flow bool
}

// dumpOutcome is how one filtered dump ended.
type dumpOutcome int

const (
	dumpDone       dumpOutcome = iota // the kernel filtered; every entry was read
	dumpWhole                         // the kernel ignored the filter: the whole family was read and filtered in Go
	dumpUnreliable                    // the kernel's filter cannot be trusted
)

// filteredDumps runs one kernel-filtered dump per filter of kfs, up to
// parallel at once, and writes the entries they return that fs selects. It reports covered=false when the
// kernel's filtering cannot be trusted and a whole dump of the family must
// be read instead: an entry that does not match its filter, or a filter
// the kernel refuses.
//
// The sockets are opened here, on the calling goroutine, so that NetNS 0
// means the calling thread's namespace; worker goroutines (on any thread)
// only read them. A socket whose dump ended early is not used again.
//
// Filtering on IPv6 addresses is inverted in the kernel (at least up to
// Linux 6.18, ctnetlink_filter_match_tuple drops the entries whose address
// equals the filter's: it tests !ipv6_addr_cmp, which is true on
// equality), so when IPv6 filters carry an address the family's filtering
// is trusted only once such a dump returned an entry that matches it; a
// dump that returned nothing proves nothing, and if no dump of the family
// proved the filter, a whole dump is read. Filters on protocol and port
// alone compare no address and need no proof.
func (c *collector) filteredDumps(ctx context.Context, netns int, fam uint8, fs []selection, kfs []kernelFilter, parallel int) (covered bool, err error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var socks []*sock
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	for range min(parallel, len(kfs)) {
		s, err := dialSock(netns)
		if err != nil {
			return false, err
		}
		socks = append(socks, s)
	}

	work := make(chan kernelFilter, len(kfs))
	for _, kf := range kfs {
		work <- kf
	}
	close(work)
	entries := make(chan entry, 64)
	type done struct {
		outcome  dumpOutcome
		received int
		proven   bool
		err      error
	}
	results := make(chan done, len(kfs))
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(wctx, s.interrupt)
			defer stop()
			for kf := range work {
				if wctx.Err() != nil {
					return
				}
				o, n, proven, err := filteredDump(wctx, s, fam, kf, fs, c.now, entries)
				results <- done{o, n, proven, err}
				if o != dumpDone || err != nil {
					return // the socket may hold the rest of that dump
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	proven := !slices.ContainsFunc(kfs, func(kf kernelFilter) bool { return kf.family == afInet6 && kf.addr.IsValid() })
	whole, unreliable := false, false
	var firstErr error
	for open := true; open; {
		select {
		case e := <-entries:
			if c.truncated || firstErr != nil {
				continue
			}
			if err := c.accept(e); errors.Is(err, errStop) {
				cancel()
			} else if err != nil {
				firstErr = err
				cancel()
			}
		case d, ok := <-results:
			if !ok {
				open = false
				break
			}
			c.info.received += d.received
			proven = proven || d.proven
			switch {
			case d.err != nil:
				if errors.Is(d.err, context.Canceled) && ctx.Err() == nil {
					break // canceled by this collection, not by the caller
				}
				if firstErr == nil {
					firstErr = d.err
				}
				cancel()
			case d.outcome == dumpWhole:
				// That dump held the whole family and was filtered
				// in Go for every selection: the others are moot.
				whole = true
				c.info.fullDumps++
				cancel()
			case d.outcome == dumpUnreliable:
				unreliable = true
				c.info.filteredDumps++
				cancel()
			default:
				c.info.filteredDumps++
			}
		}
	}
	// The workers are done; take what they sent before they ended.
	for len(entries) > 0 {
		if e := <-entries; !c.truncated && firstErr == nil {
			if err := c.accept(e); err != nil && !errors.Is(err, errStop) {
				firstErr = err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if firstErr != nil {
		return false, firstErr
	}
	switch {
	case c.truncated || whole:
		return true, nil
	case unreliable:
		return false, nil
	}
	return proven, nil
}

// filteredDump runs the dump the kernel filters by kf on s and sends the
// entries it returns that fs selects to out. received counts the entries
// read; proven tells whether one of them matched a kernel filter on an
// IPv6 address (see filteredDumps).
func filteredDump(ctx context.Context, s *sock, fam uint8, kf kernelFilter, fs []selection, now time.Time, out chan<- entry) (o dumpOutcome, received int, proven bool, err error) {
	req, err := dumpRequest(fam, &kf)
	if err != nil {
		return dumpDone, 0, false, err
	}
	var mi msgInfo
	whole := false
	err = s.request(ctx, req, func(h msgHeader, data []byte) error {
		received++
		if err := scanMessage(data, &mi); err != nil {
			return err
		}
		if h.Flags&nlmFDumpFiltd == 0 {
			whole = true // the kernel ignored the filter
		}
		if !whole {
			if !kf.match(&mi) {
				return errUnreliable
			}
			proven = proven || kf.addr.Is6()
		}
		if !matchAny(fs, &mi) {
			return nil
		}
		e := entry{key: mi.key()}
		e.line, e.flow = formatEntry(nil, h, data, &mi, now)
		select {
		case out <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	var kerr *kernelError
	switch {
	case errors.Is(err, errUnreliable):
		return dumpUnreliable, received, proven, nil
	case errors.As(err, &kerr) && (kerr.errno == syscall.EINVAL || kerr.errno == syscall.EOPNOTSUPP):
		return dumpUnreliable, received, proven, nil // the kernel refused the filter
	case err != nil:
		return dumpDone, received, proven, fmt.Errorf("conntrack dump (%s): %w", kf, err)
	case whole:
		return dumpWhole, received, proven, nil
	}
	return dumpDone, received, proven, nil
}

// fullDump reads every entry of family fam (0: all) and keeps those any of
// fs selects (fs nil: all of them).
func (c *collector) fullDump(ctx context.Context, netns int, fam uint8, fs []selection) error {
	s, err := dialSock(netns)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()

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
		if fs != nil && !matchAny(fs, &c.mi) {
			return nil
		}
		k := c.mi.key()
		if c.isDup(k) {
			return nil
		}
		var e entry
		c.line, e.flow = formatEntry(c.line[:0], h, data, &c.mi, c.now)
		e.key, e.line = k, c.line
		return c.accept(e)
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

func (c *collector) isDup(k flowKey) bool {
	if c.seen == nil {
		return false
	}
	_, dup := c.seen[k]
	return dup
}

// accept writes a selected entry unless it was written before; past the
// Limit it marks the collection truncated and returns errStop.
func (c *collector) accept(e entry) error {
	if c.isDup(e.key) {
		return nil
	}
	if e.flow && c.limit >= 0 && c.written >= c.limit {
		c.truncated = true
		return errStop
	}
	if c.seen != nil {
		c.seen[e.key] = struct{}{}
	}
	if _, err := c.w.Write(e.line); err != nil {
		return fmt.Errorf("write flows: %w", err)
	}
	if e.flow {
		c.written++
	}
	return nil
}

// formatEntry appends the `conntrack -L` line (with its newline) of the
// entry mi was scanned from to b. An entry ti-mo/conntrack cannot decode
// becomes a comment line (ctflow skips those) that keeps the evidence it
// exists; flow is then false.
func formatEntry(b []byte, h msgHeader, data []byte, mi *msgInfo, now time.Time) (line []byte, flow bool) {
	f, err := decodeFlow(h, data)
	if err != nil {
		b = append(b, "# ctcollect: undecodable conntrack entry id="...)
		b = strconv.AppendUint(b, uint64(mi.id), 10)
		b = append(b, ": "...)
		b = append(b, strings.ReplaceAll(err.Error(), "\n", " ")...)
		return append(b, '\n'), false
	}
	b = appendFlow(b, &f, mi.attrs, now)
	return append(b, '\n'), true
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

// kernelCaps are the dump filters this kernel implements.
type kernelCaps struct {
	// filter: CTA_FILTER on the original tuple (Linux 5.8, cb8aa9a3affb
	// "netfilter: ctnetlink: add kernel side filtering for dump").
	filter bool
}

func kernelCapabilities() kernelCaps {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernelCaps{}
	}
	major, minor := parseRelease(unix.ByteSliceToString(u.Release[:]))
	v := major*1000 + minor
	return kernelCaps{filter: v >= 5008}
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
