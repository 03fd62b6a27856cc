// Copyright 2020 lesismal. All rights reserved.
// Use of this source code is governed by an MIT-style
// license that can be found in the LICENSE file.

//go:build linux
// +build linux

package nbio

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/lesismal/nbio/logging"
)

const (
	// EPOLLLT .
	EPOLLLT = 0

	// EPOLLET .
	EPOLLET = 0x80000000

	// EPOLLONESHOT .
	EPOLLONESHOT = syscall.EPOLLONESHOT
)

const (
	epollEventsRead  = syscall.EPOLLPRI | syscall.EPOLLIN
	epollEventsWrite = syscall.EPOLLOUT
	epollEventsError = syscall.EPOLLERR | syscall.EPOLLHUP | syscall.EPOLLRDHUP
)

const (
	IPPROTO_TCP   = syscall.IPPROTO_TCP
	TCP_KEEPINTVL = syscall.TCP_KEEPINTVL
	TCP_KEEPIDLE  = syscall.TCP_KEEPIDLE
)

// broker patch: connGen numbers every epoll registration of a connection.
// Each Conn takes the next value when it is added to a poller and puts it in
// the spare half of epoll_data (EpollEvent.Pad, next to Fd) of every
// EPOLL_CTL_ADD/MOD for its fd. A descriptor is reused as soon as it is
// closed, and it can be closed on any goroutine (a failed Write closes the
// socket on the writer's goroutine) while a poller still holds an event for
// it in the batch that epoll_wait returned. readWriteLoop drops events whose
// tag is not the generation of the Conn now stored at that fd, so a stale
// EPOLLHUP for the old socket cannot close the new one. One counter for the
// whole process (not per fd or per poller) means a tag can only collide after
// 2^32 registrations, far longer than any event batch lives.
var connGen uint32

type poller struct {
	g *Engine // parent engine

	epfd  int // epoll fd
	evtfd int // event fd for trigger

	index int // poller index in engine

	pollType string // listener or io poller

	shutdown bool // state

	// whether poller is used for listener.
	isListener bool
	// listener.
	listener net.Listener
	// if poller is used as UnixConn listener,
	// store the addr and remove it when exit.
	unixSockAddr string

	ReadBuffer []byte // default reading buffer
}

// add the connection to poller and handle its io events.
//
//go:norace
func (p *poller) addConn(c *Conn) error {
	fd := c.fd
	if fd >= len(p.g.connsUnix) {
		err := fmt.Errorf("too many open files, fd[%d] >= MaxOpenFiles[%d]",
			fd,
			len(p.g.connsUnix),
		)
		_ = c.closeWithError(err)
		return err
	}
	c.p = p
	c.gen = atomic.AddUint32(&connGen, 1) // broker patch: see connGen
	if c.typ != ConnTypeUDPServer {
		p.g.onOpen(c)
	} else {
		p.g.onUDPListen(c)
	}
	p.g.connsUnix[fd] = c
	err := p.addRead(c)
	if err != nil {
		p.g.connsUnix[fd] = nil
		_ = c.closeWithError(err)
	}
	return err
}

// add the connection to poller and handle its io events.
//
//go:norace
func (p *poller) addDialer(c *Conn) error {
	fd := c.fd
	if fd >= len(p.g.connsUnix) {
		err := fmt.Errorf("too many open files, fd[%d] >= MaxOpenFiles[%d]",
			fd,
			len(p.g.connsUnix),
		)
		_ = c.closeWithError(err)
		return err
	}
	c.p = p
	c.gen = atomic.AddUint32(&connGen, 1) // broker patch: see connGen
	p.g.connsUnix[fd] = c
	c.isWAdded = true
	err := p.addReadWrite(c)
	if err != nil {
		p.g.connsUnix[fd] = nil
		_ = c.closeWithError(err)
	}
	return err
}

//go:norace
func (p *poller) getConn(fd int) *Conn {
	return p.g.connsUnix[fd]
}

//go:norace
func (p *poller) deleteConn(c *Conn) {
	if c == nil {
		return
	}
	fd := c.fd

	if c.typ != ConnTypeUDPClientFromRead {
		if c == p.g.connsUnix[fd] {
			p.g.connsUnix[fd] = nil
		}
		// p.deleteEvent(fd)
	}

	if c.typ != ConnTypeUDPServer {
		p.g.onClose(c, c.closeErr)
	}
}

//go:norace
func (p *poller) start() {
	defer p.g.Done()

	logging.Debug("NBIO[%v][%v_%v] start", p.g.Name, p.pollType, p.index)
	defer logging.Debug("NBIO[%v][%v_%v] stopped", p.g.Name, p.pollType, p.index)

	if p.isListener {
		p.acceptorLoop()
	} else {
		defer func() {
			_ = syscall.Close(p.epfd)
			_ = syscall.Close(p.evtfd)
		}()
		p.readWriteLoop()
	}
}

//go:norace
func (p *poller) acceptorLoop() {
	if p.g.LockListener {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}

	// broker patch: do not reset p.shutdown here: a poller is new when its
	// loop starts, and a stop() that ran before this goroutine got here
	// would be lost, leaving Engine.Stop waiting on EpollWait forever.
	for !p.shutdown {
		conn, err := p.listener.Accept()
		if err == nil {
			var c *Conn
			c, err = NBConn(conn)
			if err != nil {
				_ = conn.Close()
				continue
			}
			err = p.g.pollers[c.Hash()%len(p.g.pollers)].addConn(c)
			if err != nil {
				logging.Error("NBIO[%v][%v_%v] addConn [fd: %v] failed: %v",
					p.g.Name,
					p.pollType,
					p.index,
					c.fd,
					err,
				)
			}
		} else {
			var ne net.Error
			if ok := errors.As(err, &ne); ok && ne.Timeout() {
				logging.Error("NBIO[%v][%v_%v] Accept failed: timeout error, retrying...",
					p.g.Name,
					p.pollType,
					p.index,
				)
				time.Sleep(time.Second / 20)
			} else {
				if !p.shutdown {
					logging.Error("NBIO[%v][%v_%v] Accept failed: %v, exit...",
						p.g.Name,
						p.pollType,
						p.index,
						err,
					)
				}
				if p.g.onAcceptError != nil {
					p.g.onAcceptError(err)
				}
			}
		}
	}
}

//go:norace
func (p *poller) readWriteLoop() {
	if p.g.LockPoller {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}

	msec := -1
	events := make([]syscall.EpollEvent, 1024)

	if p.g.onRead == nil && p.g.EpollMod == EPOLLET {
		p.g.MaxConnReadTimesPerEventLoop = 1<<31 - 1
	}

	g := p.g
	// broker patch: do not reset p.shutdown here: a poller is new when its
	// loop starts, and a stop() that ran before this goroutine got here
	// would be lost, leaving Engine.Stop waiting on EpollWait forever.
	isOneshot := g.isOneshot
	asyncReadEnabled := g.AsyncReadInPoller && (g.EpollMod == EPOLLET)
	for !p.shutdown {
		n, err := syscall.EpollWait(p.epfd, events, msec)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			logging.Error("NBIO[%v][%v_%v] EpollWait failed: %v, exit...",
				p.g.Name,
				p.pollType,
				p.index,
				err,
			)
			return
		}

		if n <= 0 {
			continue
		}

		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			switch fd {
			case p.evtfd: // triggered by stop, exit event loop

			default: // for socket connections
				c := p.getConn(fd)
				// broker patch: an event from an earlier registration of
				// this fd belongs to a closed socket; see connGen.
				if c != nil && uint32(ev.Pad) == c.gen {
					if ev.Events&epollEventsWrite != 0 {
						if c.onConnected == nil {
							_ = c.flush()
						} else {
							c.onConnected(c, nil)
							c.onConnected = nil
							c.resetRead()
						}
					}

					if ev.Events&epollEventsRead != 0 {
						if g.onRead == nil {
							if asyncReadEnabled {
								c.AsyncRead()
							} else {
								for i := 0; i < g.MaxConnReadTimesPerEventLoop; i++ {
									pbuf := g.borrow(c)
									bufLen := len(*pbuf)
									rc, n, err := c.ReadAndGetConn(pbuf)
									if n > 0 {
										*pbuf = (*pbuf)[:n]
										g.onDataPtr(rc, pbuf)
									}
									g.payback(c, pbuf)
									if errors.Is(err, syscall.EINTR) {
										continue
									}
									if errors.Is(err, syscall.EAGAIN) {
										break
									}
									if err != nil {
										_ = c.closeWithError(err)
										break
									}
									if n < bufLen {
										break
									}
								}
								if isOneshot {
									c.ResetPollerEvent()
								}
							}
						} else {
							g.onRead(c)
						}
					}

					if ev.Events&epollEventsError != 0 {
						_ = c.closeWithError(io.EOF)
						continue
					}
				}
			}
		}
	}
}

//go:norace
func (p *poller) stop() {
	logging.Debug("NBIO[%v][%v_%v] stop...", p.g.Name, p.pollType, p.index)
	p.shutdown = true
	if p.listener != nil {
		_ = p.listener.Close()
		if p.unixSockAddr != "" {
			_ = os.Remove(p.unixSockAddr)
		}
	} else {
		n := uint64(1)
		_, _ = syscall.Write(p.evtfd, (*(*[8]byte)(unsafe.Pointer(&n)))[:])
	}
}

// broker patch: the add/mod helpers take the Conn instead of its fd so that
// every registration carries c.gen (see connGen).
//
//go:norace
func (p *poller) addRead(c *Conn) error {
	return p.setRead(syscall.EPOLL_CTL_ADD, c)
}

//go:norace
func (p *poller) resetRead(c *Conn) error {
	return p.setRead(syscall.EPOLL_CTL_MOD, c)
}

//go:norace
func (p *poller) setRead(op int, c *Conn) error {
	fd := c.fd
	switch p.g.EpollMod {
	case EPOLLET:
		events := syscall.EPOLLERR |
			syscall.EPOLLHUP |
			syscall.EPOLLRDHUP |
			syscall.EPOLLPRI |
			syscall.EPOLLIN |
			EPOLLET |
			p.g.EPOLLONESHOT
		if p.g.EPOLLONESHOT != EPOLLONESHOT {
			if op == syscall.EPOLL_CTL_ADD {
				return syscall.EpollCtl(p.epfd, op, fd, &syscall.EpollEvent{
					Fd:     int32(fd),
					Pad:    int32(c.gen), // broker patch
					Events: c.readMask(events | syscall.EPOLLOUT),
				})
			}
			return nil
		}
		return syscall.EpollCtl(p.epfd, op, fd, &syscall.EpollEvent{
			Fd:     int32(fd),
			Pad:    int32(c.gen), // broker patch
			Events: c.readMask(events),
		})
	default:
		return syscall.EpollCtl(
			p.epfd,
			op,
			fd,
			&syscall.EpollEvent{
				Fd:  int32(fd),
				Pad: int32(c.gen), // broker patch
				Events: c.readMask(syscall.EPOLLERR |
					syscall.EPOLLHUP |
					syscall.EPOLLRDHUP |
					syscall.EPOLLPRI |
					syscall.EPOLLIN),
			},
		)
	}
}

//go:norace
func (p *poller) modWrite(c *Conn) error {
	return p.setReadWrite(syscall.EPOLL_CTL_MOD, c)
}

//go:norace
func (p *poller) addReadWrite(c *Conn) error {
	return p.setReadWrite(syscall.EPOLL_CTL_ADD, c)
}

//go:norace
func (p *poller) setReadWrite(op int, c *Conn) error {
	fd := c.fd
	switch p.g.EpollMod {
	case EPOLLET:
		events := syscall.EPOLLERR |
			syscall.EPOLLHUP |
			syscall.EPOLLRDHUP |
			syscall.EPOLLPRI |
			syscall.EPOLLIN |
			syscall.EPOLLOUT |
			EPOLLET |
			p.g.EPOLLONESHOT
		if p.g.EPOLLONESHOT != EPOLLONESHOT {
			if op == syscall.EPOLL_CTL_ADD {
				return syscall.EpollCtl(p.epfd, op, fd, &syscall.EpollEvent{
					Fd:     int32(fd),
					Pad:    int32(c.gen), // broker patch
					Events: c.readMask(events),
				})
			}
			return nil
		}
		return syscall.EpollCtl(p.epfd, op, fd, &syscall.EpollEvent{
			Fd:     int32(fd),
			Pad:    int32(c.gen), // broker patch
			Events: c.readMask(events),
		})
	default:
		return syscall.EpollCtl(
			p.epfd, op, fd,
			&syscall.EpollEvent{
				Fd:  int32(fd),
				Pad: int32(c.gen), // broker patch
				Events: c.readMask(syscall.EPOLLERR |
					syscall.EPOLLHUP |
					syscall.EPOLLRDHUP |
					syscall.EPOLLPRI |
					syscall.EPOLLIN |
					syscall.EPOLLOUT),
			},
		)
	}
}

// func (p *poller) deleteEvent(fd int) error {
// 	return syscall.EpollCtl(
// 		p.epfd,
// 		syscall.EPOLL_CTL_DEL,
// 		fd,
// 		&syscall.EpollEvent{Fd: int32(fd)},
// 	)
// }

//go:norace
func newPoller(g *Engine, isListener bool, index int) (*poller, error) {
	if isListener {
		if len(g.Addrs) == 0 {
			panic("invalid listener num")
		}

		addr := g.Addrs[index%len(g.Addrs)]
		ln, err := g.Listen(g.Network, addr)
		if err != nil {
			return nil, err
		}

		p := &poller{
			g:          g,
			index:      index,
			listener:   ln,
			isListener: isListener,
			pollType:   "LISTENER",
		}
		if g.Network == "unix" {
			p.unixSockAddr = addr
		}

		return p, nil
	}

	fd, err := syscall.EpollCreate1(0)
	if err != nil {
		return nil, err
	}

	r0, _, e0 := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK, 0)
	if e0 != 0 {
		_ = syscall.Close(fd)
		return nil, e0
	}

	err = syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, int(r0),
		&syscall.EpollEvent{Fd: int32(r0),
			Events: syscall.EPOLLIN,
		},
	)
	if err != nil {
		_ = syscall.Close(fd)
		_ = syscall.Close(int(r0))
		return nil, err
	}

	p := &poller{
		g:          g,
		epfd:       fd,
		evtfd:      int(r0),
		index:      index,
		isListener: isListener,
		pollType:   "POLLER",
	}

	return p, nil
}

//go:norace
func (c *Conn) ResetPollerEvent() {
	p := c.p
	g := p.g
	if g.isOneshot && !c.closed {
		if len(c.writeList) == 0 {
			_ = p.resetRead(c)
		} else {
			_ = p.modWrite(c)
		}
	}
}

// PauseRead stops reading c until ResumeRead: its fd stays registered
// without EPOLLIN, so the kernel buffers what the peer sends and, once the
// receive buffer is full, TCP flow control stops the peer. Use it for
// backpressure on a peer that sends faster than it can be served.
//
// While paused, pending writes are still flushed (EPOLLOUT stays while
// there are any), and EPOLLHUP/EPOLLERR are still reported, so a peer that
// resets is noticed and the Conn is closed as usual. EPOLLRDHUP is not
// asked for: a peer that only half-closes is noticed on resume, after the
// bytes it sent before its FIN have been read. A read already under way
// when PauseRead is called may still deliver its bytes to OnData; no read
// starts after PauseRead returns.
//
// PauseRead and ResumeRead may be called from any goroutine, including
// OnData; they are no-ops on a closed Conn. They are supported for TCP and
// Unix stream connections in EPOLLLT and EPOLLET mode, not with
// EPOLLONESHOT (ErrUnsupported).
//
// broker patch: not in upstream nbio.
//
//go:norace
func (c *Conn) PauseRead() error {
	return c.setReadPaused(true)
}

// ResumeRead undoes PauseRead: the fd is registered for EPOLLIN again and
// bytes that arrived meanwhile reach OnData in order.
//
// broker patch: not in upstream nbio.
//
//go:norace
func (c *Conn) ResumeRead() error {
	return c.setReadPaused(false)
}

// broker patch: PauseRead/ResumeRead.
//
//go:norace
func (c *Conn) setReadPaused(paused bool) error {
	c.mux.Lock()
	defer c.mux.Unlock()
	if c.closed {
		return nil
	}
	if (c.typ != ConnTypeTCP && c.typ != ConnTypeUnix) || (c.p != nil && c.p.g.isOneshot) {
		return ErrUnsupported
	}
	if c.readPaused == paused {
		return nil
	}
	c.readPaused = paused
	if c.p == nil {
		return nil // not registered yet: addConn honours readPaused
	}
	// Rebuild the whole interest set: setRead/setReadWrite skip the MOD in
	// EPOLLET mode without EPOLLONESHOT, where they have nothing to change.
	events := uint32(syscall.EPOLLERR | syscall.EPOLLHUP | syscall.EPOLLRDHUP | epollEventsRead)
	if c.isWAdded || c.p.g.EpollMod == EPOLLET {
		// EPOLLET registers EPOLLOUT for good (see setRead).
		events |= syscall.EPOLLOUT
	}
	if c.p.g.EpollMod == EPOLLET {
		events |= EPOLLET
	}
	return syscall.EpollCtl(c.p.epfd, syscall.EPOLL_CTL_MOD, c.fd, &syscall.EpollEvent{
		Fd:     int32(c.fd),
		Pad:    int32(c.gen),
		Events: c.readMask(events),
	})
}

// readMask removes the read interest from events while c is paused.
// EPOLLERR and EPOLLHUP stay: epoll reports them whether asked or not.
//
// broker patch: PauseRead/ResumeRead.
//
//go:norace
func (c *Conn) readMask(events uint32) uint32 {
	if c.readPaused {
		return events &^ (epollEventsRead | syscall.EPOLLRDHUP)
	}
	return events
}
