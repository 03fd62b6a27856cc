package cluster

import (
	"bytes"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/webinate/broker/broker"
)

// Cluster queries (broker.ClusterQuery): the disconnect API and presence
// ask every node. A question goes out on core NATS to
// <prefix>.query.<kind>, which every node subscribes to (no queue group),
// and every node but the asker answers on the reply inbox. To know when
// everyone has answered, nodes announce themselves on <prefix>.nodes every
// memberInterval; the asker waits for the members it knows of, or the
// timeout. A member not heard of for memberTTL is forgotten (a node that
// stopped, or is cut off from NATS and so has no say anyway).
const (
	memberInterval = time.Second
	memberTTL      = 3 * memberInterval
)

var _ broker.ClusterQuery = (*Bridge)(nil)

// members are the other nodes this one has heard of.
type members struct {
	mu   sync.Mutex
	seen map[string]time.Time // by node id: last announcement
}

// live returns the ids heard of within memberTTL, forgetting the others.
func (m *members) live(now time.Time) map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]bool, len(m.seen))
	for id, t := range m.seen {
		if now.Sub(t) > memberTTL {
			delete(m.seen, id)
			continue
		}
		out[id] = true
	}
	return out
}

// startQuery subscribes to the other nodes' questions and announcements
// and starts announcing this node. Called from Start; nats.go resubscribes
// after a reconnect.
func (b *Bridge) startQuery() error {
	b.subjNodes = b.cfg.Subject + ".nodes"
	b.members.seen = make(map[string]time.Time)
	if _, err := b.nc.Subscribe(b.subjNodes, b.onMember); err != nil {
		return err
	}
	if _, err := b.nc.Subscribe(b.cfg.Subject+".query.*", b.onQuery); err != nil {
		return err
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(memberInterval)
		defer t.Stop()
		for {
			_ = b.nc.Publish(b.subjNodes, []byte(b.id+" +"))
			select {
			case <-b.closing:
				_ = b.nc.Publish(b.subjNodes, []byte(b.id+" -")) // leaving: do not wait for me
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// onMember records another node's announcement ("<id> +") or departure
// ("<id> -").
func (b *Bridge) onMember(m *nats.Msg) {
	id, state, ok := bytes.Cut(m.Data, []byte{' '})
	if !ok || string(id) == b.id {
		return
	}
	b.members.mu.Lock()
	defer b.members.mu.Unlock()
	if string(state) == "-" {
		delete(b.members.seen, string(id))
		return
	}
	b.members.seen[string(id)] = time.Now()
}

// onQuery answers another node's question ("<asker id> <request>") with
// "<this id> <answer>". An answer larger than a NATS message is not sent:
// the asker then reports the result as partial.
func (b *Bridge) onQuery(m *nats.Msg) {
	asker, req, ok := bytes.Cut(m.Data, []byte{' '})
	if !ok || string(asker) == b.id || m.Reply == "" {
		return
	}
	kind := m.Subject[len(b.cfg.Subject)+len(".query."):]
	ans := b.node.Answer(kind, req)
	if ans == nil || int64(len(ans)+len(b.id)+1) > b.maxMsg {
		return
	}
	out := make([]byte, 0, len(b.id)+1+len(ans))
	out = append(append(append(out, b.id...), ' '), ans...)
	_ = b.nc.Publish(m.Reply, out)
}

// Query implements broker.ClusterQuery. done runs on its own goroutine.
func (b *Bridge) Query(kind string, req []byte, timeout time.Duration, done func(answers [][]byte, complete bool)) {
	expect := b.members.live(time.Now())
	inbox := b.nc.NewRespInbox()
	ch := make(chan *nats.Msg, len(expect)+8)
	sub, err := b.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		go done(nil, len(expect) == 0)
		return
	}
	msg := make([]byte, 0, len(b.id)+1+len(req))
	msg = append(append(append(msg, b.id...), ' '), req...)
	if err := b.nc.PublishRequest(b.cfg.Subject+".query."+kind, inbox, msg); err != nil {
		_ = sub.Unsubscribe()
		go done(nil, len(expect) == 0)
		return
	}
	go func() {
		defer func() { _ = sub.Unsubscribe() }()
		t := time.NewTimer(timeout)
		defer t.Stop()
		var answers [][]byte
		heard := map[string]bool{}
		missing := len(expect)
		for missing > 0 {
			select {
			case m := <-ch:
				id, ans, ok := bytes.Cut(m.Data, []byte{' '})
				if !ok || heard[string(id)] {
					continue
				}
				heard[string(id)] = true
				answers = append(answers, ans)
				if expect[string(id)] {
					missing--
				}
			case <-t.C:
				done(answers, false)
				return
			case <-b.closing:
				done(answers, false)
				return
			}
		}
		done(answers, true)
	}()
}
