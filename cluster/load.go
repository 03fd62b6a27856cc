package cluster

import (
	"bytes"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/webinate/broker/internal/monoclock"
)

// Cross-node backpressure. Each node judges saturation from its own
// clients only (broker: one in ten of its audience is behind; sockets
// that read nothing have no vote), but every node delivers every event, so a publisher on
// node A must also wait while node B's fan-out is behind; otherwise A
// accepts at its own pace and B's clients are cut as slow consumers
// (BENCHMARKS.md, 48,000 sockets over 3 nodes, before this). Nodes tell
// each other over core NATS on <prefix>.load: a saturated node announces
// "<id> 1 <name>" every loadInterval and "<id> 0 <name>" once when it
// has caught up. A node that stops announcing (gone, cut off from NATS)
// stops holding the others after loadTTL. The messages are tiny and sent
// only while some node is behind; nothing is stored in JetStream.
const (
	// loadInterval is how often a node samples its own saturation and,
	// while saturated, repeats its announcement: about the reaction time
	// of the other nodes' publishers.
	loadInterval = 25 * time.Millisecond
	// loadTTL is how long an announcement holds without a repeat: many
	// intervals, so that a loaded NATS server delaying a few repeats does
	// not let publishers through in bursts.
	loadTTL = 20 * loadInterval
	// maxPending is how many stream messages this node may be behind
	// the stream (JetStream's NumPending, which does not count the
	// messages already fetched into the consumer's buffer) before it
	// counts as saturated itself: it has not even taken what others
	// published into its log.
	maxPending = 256
)

// peerLoad is one saturated peer.
type peerLoad struct {
	name  string
	until int64 // monoclock.Now
}

// startLoad subscribes to the other nodes' announcements and starts the
// announcer. Called from Start; nats.go resubscribes after a reconnect.
func (b *Bridge) startLoad() error {
	// Never unsubscribed: Close closes the connection.
	if _, err := b.nc.Subscribe(b.subjLoad, b.onLoad); err != nil {
		return err
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.announce()
	}()
	return nil
}

// announce samples this node's saturation every loadInterval and tells
// the others while it lasts, and once when it ends.
func (b *Bridge) announce() {
	t := time.NewTicker(loadInterval)
	defer t.Stop()
	was := false
	for {
		select {
		case <-b.closing:
			if was {
				b.sendLoad(false) // do not leave the others waiting for loadTTL
			}
			return
		case <-t.C:
		}
		sat := b.node.Saturated() || b.behindStream()
		if sat != was {
			// Saturation comes and goes many times a second under a
			// flood: debug only; /stats and /metrics count the holds.
			b.log.Debug().Bool("saturated", sat).Uint64("pending", b.pending.Load()).Msg("announcing this node's fan-out state to the cluster")
		}
		if sat || was {
			// While disconnected this fails at once (no reconnect
			// buffer); the others' copy then expires after loadTTL.
			_ = b.sendLoad(sat)
		}
		was = sat
	}
}

func (b *Bridge) sendLoad(sat bool) error {
	state := " 0 "
	if sat {
		state = " 1 "
	}
	return b.nc.Publish(b.subjLoad, []byte(b.id+state+b.cfg.Name))
}

// onLoad records another node's announcement.
func (b *Bridge) onLoad(m *nats.Msg) {
	id, rest, ok := bytes.Cut(m.Data, []byte{' '})
	if !ok || string(id) == b.id || len(rest) < 1 {
		return
	}
	sat := rest[0] == '1'
	name := ""
	if len(rest) > 2 {
		name = string(rest[2:])
	}
	now := monoclock.Now()
	b.peersMu.Lock()
	defer b.peersMu.Unlock()
	if sat {
		if _, known := b.peers[string(id)]; !known {
			b.peerHolds.Add(1)
		}
		b.peers[string(id)] = peerLoad{name: name, until: now + int64(loadTTL)}
	} else {
		delete(b.peers, string(id))
	}
	// Saturated reads one atomic: the latest expiry of any saturated peer.
	var until int64
	for k, p := range b.peers {
		if p.until <= now {
			delete(b.peers, k)
			continue
		}
		until = max(until, p.until)
	}
	b.peersUntil.Store(until)
}

// Saturated implements broker.Bus: another node announced within loadTTL
// that it is behind and has not since said it caught up, or this node
// is more than maxPending stream messages behind.
func (b *Bridge) Saturated() bool {
	return monoclock.Now() < b.peersUntil.Load() || b.behindStream()
}

// behindStream reports whether this node is more than maxPending stream
// messages behind: saturated itself, whatever its clients do.
func (b *Bridge) behindStream() bool { return b.pending.Load() > maxPending }

// saturatedPeers names the peers currently holding publishers, sorted.
func (b *Bridge) saturatedPeers() []string {
	now := monoclock.Now()
	b.peersMu.Lock()
	defer b.peersMu.Unlock()
	var out []string
	for id, p := range b.peers {
		if p.until > now {
			name := p.name
			if name == "" {
				name = id
			}
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
