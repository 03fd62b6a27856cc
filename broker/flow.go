package broker

import (
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/webinate/broker/internal/monoclock"
)

// passTick is how often each shard worker passes over its connections when
// nothing wakes it: often enough to notice a connection crossing the lag
// bounds well within them.
func passTick(maxLag, publishLag time.Duration) time.Duration {
	d := maxLag / 10
	if publishLag > 0 {
		d = min(d, publishLag/2)
	}
	return min(max(d, 10*time.Millisecond), 250*time.Millisecond)
}

// tuneSocket applies the per-socket options: a short kernel queue of unsent
// bytes (TCP_NOTSENT_LOWAT), so that latency is the broker's to manage and
// not a send buffer that autotunes to megabytes, and SO_SNDBUF if set.
func (s *Server) tuneSocket(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	if s.cfg.SocketWriteBuffer > 0 {
		_ = tc.SetWriteBuffer(s.cfg.SocketWriteBuffer)
	}
	if s.cfg.NotSentLowat > 0 {
		if rc, err := tc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, s.cfg.NotSentLowat)
			})
		}
	}
}

// tcpNotSentLowat is TCP_NOTSENT_LOWAT from linux/tcp.h (the syscall
// package does not name it).
const tcpNotSentLowat = 25

// outputBytes is the broker's buffered output: the event log plus what
// connections hold in nbio's buffers (as of the workers' last passes).
func (s *Server) outputBytes() int64 { return s.events.Bytes() + s.hub.buffered() }

// guard enforces MaxOutputMemory and HistoryAge. Output memory is the
// event log plus what connections hold in nbio's buffers (which the credit
// window keeps small); over the limit, the connections holding the most are
// closed first, at once: waiting for their close handshake would keep the
// memory.
func (s *Server) guard() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	type held struct {
		c *conn
		n int64
	}
	var list []held
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if s.cfg.HistoryAge > 0 {
			s.events.Trim(monoclock.Now())
		}
		limit := s.cfg.MaxOutputMemory
		if limit <= 0 {
			continue
		}
		over := s.outputBytes() - limit
		if over <= 0 {
			continue
		}
		list = list[:0]
		s.hub.each(func(c *conn) {
			if n := c.pending(); n > 0 && !c.gone.Load() {
				list = append(list, held{c, n})
			}
		})
		slices.SortFunc(list, func(a, b held) int { return int(b.n - a.n) })
		closed := 0
		for _, h := range list {
			if over <= 0 {
				break
			}
			over -= h.n
			closed++
			r := reasonMemory
			h.c.reason.CompareAndSwap(nil, &r)
			h.c.closing.Store(true)
			_ = h.c.nbc.Close()
		}
		if closed > 0 {
			s.stats.memoryCloses.Add(int64(closed))
			s.log.Warn().Int("closed", closed).Int64("maxOutputMemory", limit).
				Msg("output memory over max-output-memory: closed the connections holding the most")
		}
		clear(list)
	}
}
