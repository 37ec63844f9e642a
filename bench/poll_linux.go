package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A closed-loop run drives its connections from event loops of its own, one per
// processor, as wrk does, rather than from a goroutine per connection on Go's
// netpoller: there, every request costs a read that finds no answer yet (the server
// has not run), a park and a wake-up, which on two cores shared with the server is a
// tenth of the CPU a request takes. Here a connection is read when epoll says its answer
// came: a request is one write, one read, and a share of an epoll_wait.

// pollLane is a lane as an event loop drives it.
type pollLane struct {
	*lane
	fd         int // -1: no connection
	connecting bool
	inflight   bool // a request is written, or being written, and not answered
	wrote      int  // of http.wbuf
	sent       time.Duration
	timed      bool
	finishing  bool
	finishBy   time.Duration
	retryAt    time.Duration // every visitor held (see build): build again then; 0: none
	over       bool
	sa         unix.Sockaddr // the lane's target; connect writes into it, so each lane has its own
	family     int           // of sa
}

// pollRun is the state the event loops of one run share.
type pollRun struct {
	r         *runner
	deadline  time.Duration
	stopped   atomic.Bool // ctx ended
	timedLeft atomic.Int64
	timedDone chan struct{}
	closeOnce sync.Once
}

const canPoll = true

// closedLoop runs the timed and the finish phase of a closed-loop run from event loops,
// and closes timedDone when every lane's timed phase is over. It returns when every
// lane is done.
func (r *runner) closedLoop(ctx context.Context, deadline time.Duration, timedDone chan struct{}) error {
	pr := &pollRun{r: r, deadline: deadline, timedDone: timedDone}
	lanes := make([]*pollLane, len(r.lanes))
	for i, l := range r.lanes {
		sa, family, err := sockaddr(l.http.addr)
		if err != nil {
			close(timedDone)
			return err
		}
		lanes[i] = &pollLane{lane: l, fd: -1, timed: true, sa: sa, family: family}
	}
	pr.timedLeft.Store(int64(len(r.lanes)))
	stop := context.AfterFunc(ctx, func() { pr.stopped.Store(true) })
	defer stop()

	n := min(runtime.GOMAXPROCS(0), len(r.lanes))
	loops := make([][]*pollLane, n)
	for i, p := range lanes {
		loops[i%n] = append(loops[i%n], p)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range loops {
		wg.Add(1)
		// Each loop returns when its lanes are done.
		go func() {
			defer wg.Done()
			errs[i] = pr.loop(loops[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sockaddr resolves a target's host:port for connect(2).
func sockaddr(addr string) (unix.Sockaddr, int, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, 0, fmt.Errorf("resolve %s: %w", addr, err)
	}
	if ip := ta.IP.To4(); ip != nil {
		sa := &unix.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ip)
		return sa, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To16())
	return sa, unix.AF_INET6, nil
}

func (pr *pollRun) endTimed(p *pollLane) {
	p.timed = false
	if pr.timedLeft.Add(-1) == 0 {
		pr.closeOnce.Do(func() { close(pr.timedDone) })
	}
}

// loop drives lanes until each is done.
func (pr *pollRun) loop(lanes []*pollLane) error {
	defer func() {
		for _, p := range lanes {
			p.closeFD()
			if p.timed { // ended early: the run must not wait for it
				pr.endTimed(p)
			}
		}
	}()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	defer unix.Close(ep)
	now := pr.r.clock()
	for i, p := range lanes {
		pr.next(ep, i, p, now)
	}
	events := make([]unix.EpollEvent, 128)
	lastScan := now
	for {
		live := 0
		wait := 10 // ms: the timeout scan and the runtime get a turn at least this often
		for _, p := range lanes {
			if !p.over {
				live++
				if p.retryAt > 0 {
					wait = 1
				}
			}
		}
		if live == 0 {
			return nil
		}
		// Wait without telling the scheduler: told, it hands the processor over and its
		// monitor wakes thousands of times a second while the loops wait, which cost
		// ~1.5µs of the ~10µs a request took (measured: 5 times the context switches).
		// Untold, a loop holds its processor for at most 10ms at a time, and the
		// runtime can still preempt it: its signal ends the wait with EINTR.
		n, err := rawEpollWait(ep, events, wait)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:max(n, 0)] {
			i := int(ev.Fd)
			p := lanes[i]
			if p.fd < 0 {
				continue
			}
			switch {
			case p.connecting || (p.inflight && p.wrote < len(p.http.wbuf)):
				if ev.Events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
					pr.write(ep, i, p)
				}
				// Edge-triggered: an answer that came with this event (an early 413
				// or 429, then a close) is not announced again.
				if p.fd >= 0 && p.inflight && !p.connecting && p.wrote == len(p.http.wbuf) &&
					ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
					pr.read(ep, i, p)
				}
			case p.inflight:
				if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
					pr.read(ep, i, p)
				}
			case ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0:
				// Nothing asked: the server closed the connection, or is out of step.
				p.closeFD()
			}
		}
		now = pr.r.clock()
		for i, p := range lanes {
			if p.retryAt > 0 && now >= p.retryAt {
				p.retryAt = 0
				pr.next(ep, i, p, now)
			}
		}
		if now-lastScan >= 100*time.Millisecond {
			lastScan = now
			for i, p := range lanes {
				if p.inflight && now-p.sent > pr.r.cfg.Timeout {
					pr.fail(ep, i, p, errTimeout)
				}
			}
		}
	}
}

// next sends lane i's next request, or ends its phase, as the time and the run say.
func (pr *pollRun) next(ep, i int, p *pollLane, now time.Duration) {
	cfg := pr.r.cfg
	for {
		// A refusal stops the run at once, before the context's news reaches stopped.
		stopped := pr.stopped.Load() || pr.r.refused.Load() != 0
		if p.timed {
			if stopped || now >= pr.deadline || (cfg.Count > 0 && pr.r.claimed.Add(1) > cfg.Count) {
				pr.endTimed(p)
				p.finishing, p.finishBy = true, pr.r.clock()+cfg.Finish // closed loop: Finish is set
			}
		}
		if p.finishing && (stopped || now >= p.finishBy) {
			p.over = true
			p.closeFD()
			return
		}
		if p.build(now, p.finishing) == 0 {
			if len(p.heap) == 0 {
				p.over = true
				p.closeFD()
				return
			}
			p.retryAt = now + holdFor/4 // every visitor waits for a millisecond to pass
			return
		}
		p.sent, p.inflight, p.wrote = now, true, 0
		p.http.request(p.body)
		if p.fd >= 0 && now-p.http.idleSince > maxIdle {
			p.closeFD()
		}
		if p.fd < 0 {
			if err := pr.dial(ep, i, p); err != nil {
				p.inflight = false
				done := pr.r.clock()
				p.complete(err, -1, p.sent, done, p.timed)
				now = done
				continue
			}
			if p.connecting {
				return
			}
		}
		pr.write(ep, i, p)
		return
	}
}

// dial opens lane i's connection, without waiting for it: the loop writes when epoll
// says it is up.
func (pr *pollRun) dial(ep, i int, p *pollLane) error {
	fd, err := unix.Socket(p.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", err)}
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(i)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("epoll_ctl", err)}
	}
	p.fd, p.connecting = fd, false
	switch err := unix.Connect(fd, p.sa); err {
	case nil:
	case unix.EINPROGRESS, unix.EINTR:
		p.connecting = true
	default:
		p.closeFD()
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	return nil
}

// write writes what is left of lane i's request; when the socket is full, epoll says
// when to go on.
func (pr *pollRun) write(ep, i int, p *pollLane) {
	if p.connecting {
		v, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && v != 0 {
			err = unix.Errno(v)
		}
		if err != nil {
			p.closeFD()
			p.inflight = false
			pr.complete(ep, i, p, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)})
			return
		}
		p.connecting = false
	}
	buf := p.http.wbuf
	for p.wrote < len(buf) {
		n, err := rawIO(unix.SYS_WRITE, p.fd, buf[p.wrote:])
		switch {
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
			continue
		case err != nil:
			pr.fail(ep, i, p, os.NewSyscallError("write", err))
			return
		}
		p.wrote += n
	}
}

// read reads lane i's answer as far as it came.
func (pr *pollRun) read(ep, i int, p *pollLane) {
	c := p.http
	for {
		if err := c.room(); err != nil {
			pr.fail(ep, i, p, err)
			return
		}
		n, err := rawIO(unix.SYS_READ, p.fd, c.rbuf[c.w:])
		switch {
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
			continue
		case err != nil:
			pr.fail(ep, i, p, os.NewSyscallError("read", err))
			return
		}
		c.w += n
		ok, perr := c.parse(n == 0)
		if perr != nil {
			pr.fail(ep, i, p, perr)
			return
		}
		if ok {
			if c.ans.close || c.r != c.w {
				p.closeFD()
			}
			pr.done(ep, i, p, nil)
			return
		}
	}
}

// done books lane i's request as answered, or failed with err, and sends the next.
// fail closes lane i's connection and ends its request with err.
func (pr *pollRun) fail(ep, i int, p *pollLane, err error) {
	p.closeFD()
	pr.done(ep, i, p, err)
}

func (pr *pollRun) done(ep, i int, p *pollLane, err error) {
	p.inflight = false
	pr.complete(ep, i, p, err)
}

func (pr *pollRun) complete(ep, i int, p *pollLane, err error) {
	done := pr.r.clock()
	p.http.idleSince = done
	p.complete(err, -1, p.sent, done, p.timed)
	pr.next(ep, i, p, done)
}

func (p *pollLane) closeFD() {
	if p.fd >= 0 {
		unix.Close(p.fd) // closing removes it from the epoll set
		p.fd, p.connecting = -1, false
	}
}

// rawIO reads or writes a non-blocking socket without telling the scheduler: the call
// never blocks, and the scheduler's bookkeeping would cost more than it does.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawEpollWait is epoll_wait for at most ms milliseconds, unknown to the scheduler. It
// calls epoll_pwait with no signal mask, which is epoll_wait: arm64 has only the former.
func rawEpollWait(ep int, events []unix.EpollEvent, ms int) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(ms), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
