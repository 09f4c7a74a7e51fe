// Package presence answers "who is subscribed to this topic right now" for a whole cluster.
//
// Every node publishes a snapshot of its own subscriptions (counts and identities per topic or
// pattern, from hub.Presence) to the engine every Interval, and reads every other node's. A
// query is answered from memory: the local part is exact and current, the other nodes' parts
// are at most about two intervals old, and a node that stopped publishing (killed, cut off)
// drops out after TTL. The engine sees one write and one read per node per interval, never
// per-client traffic.
//
// The package owns the tracking loop (Run); the engine only stores bytes (Store).
package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

// Store shares snapshots between nodes. Engines that several nodes share implement it.
type Store interface {
	// PutPresence stores node's snapshot, replacing its previous one. The engine may forget
	// it after ttl.
	PutPresence(ctx context.Context, node string, snapshot []byte, ttl time.Duration) error
	// Presence returns the latest snapshot of every node, keyed by node.
	Presence(ctx context.Context) (map[string][]byte, error)
}

// Config configures a Tracker. Zero values mean the documented default.
type Config struct {
	Hub      *hub.Hub      // required: this node's subscriptions
	Store    Store         // nil: this node alone (single node or embedded engine)
	Interval time.Duration // how often snapshots are exchanged; 0 means 2s
	// TTL is how long a node that stopped publishing still counts; 0 means 3 intervals.
	TTL           time.Duration
	MaxIdentities int          // identities listed per topic and node; 0 means 1000
	Node          string       // this node's name; "" means a random one
	Logger        *slog.Logger // nil means slog.Default()
}

// Result is the answer for one topic.
type Result struct {
	Topic       string   `json:"topic"`
	Subscribers int      `json:"subscribers"`
	Identities  []string `json:"identities"`
	Nodes       int      `json:"nodes"` // nodes whose snapshots were counted, this one included
}

// Tracker is safe for concurrent use.
type Tracker struct {
	cfg Config

	mu      sync.Mutex
	version uint64           // of this node's snapshot
	remote  map[string]*peer // other nodes' latest snapshots
}

type peer struct {
	snap snapshot
	seen time.Time // local time the snapshot's version last changed
}

// snapshot is what a node publishes. V changes with every publish, so that readers can tell a
// live node from a stale entry by their own clock, whatever the clocks of the others say.
type snapshot struct {
	V      uint64                  `json:"v"`
	Topics map[string]hub.Presence `json:"t"`
}

// New returns a tracker; start it with Run.
func New(cfg Config) *Tracker {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 3 * cfg.Interval
	}
	if cfg.MaxIdentities <= 0 {
		cfg.MaxIdentities = 1000
	}
	if cfg.Node == "" {
		var b [8]byte
		rand.Read(b[:])
		cfg.Node = hex.EncodeToString(b[:])
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Tracker{cfg: cfg, remote: make(map[string]*peer)}
}

// Node returns this node's name.
func (t *Tracker) Node() string { return t.cfg.Node }

// Run exchanges snapshots every Interval until ctx ends. Engine errors are logged and retried
// at the next tick; meanwhile the last known state of other nodes keeps aging out.
func (t *Tracker) Run(ctx context.Context) error {
	if t.cfg.Store == nil {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	failing := false
	for {
		err := t.exchange(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing: // once per outage, not every tick
			t.cfg.Logger.Warn("presence exchange failing; other nodes' subscribers age out", "err", err)
			failing = true
		case err == nil && failing:
			t.cfg.Logger.Info("presence exchange recovered")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// exchange publishes this node's snapshot and reads everyone's.
func (t *Tracker) exchange(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Interval)
	defer cancel()
	t.mu.Lock()
	t.version++
	snap := snapshot{V: t.version, Topics: t.local()}
	t.mu.Unlock()
	b, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	if err := t.cfg.Store.PutPresence(ctx, t.cfg.Node, b, t.cfg.TTL); err != nil {
		return err
	}
	all, err := t.cfg.Store.Presence(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for node, raw := range all {
		if node == t.cfg.Node {
			continue
		}
		var s snapshot
		if err := json.Unmarshal(raw, &s); err != nil {
			t.cfg.Logger.Warn("presence: bad snapshot", "node", node, "err", err)
			continue
		}
		if p, ok := t.remote[node]; ok && p.snap.V == s.V {
			continue // unchanged: its age keeps growing
		}
		t.remote[node] = &peer{snap: s, seen: now}
	}
	for node, p := range t.remote {
		if now.Sub(p.seen) > t.cfg.TTL {
			delete(t.remote, node)
		}
	}
	return nil
}

// local is this node's snapshot, identities capped.
func (t *Tracker) local() map[string]hub.Presence {
	topics := t.cfg.Hub.Presence()
	for k, p := range topics {
		if len(p.Identities) > t.cfg.MaxIdentities {
			p.Identities = p.Identities[:t.cfg.MaxIdentities]
			topics[k] = p
		}
	}
	return topics
}

// Lookup answers for topic, a topic or a pattern. For a topic it counts subscriptions naming
// it and subscriptions whose pattern matches it; for a pattern, subscriptions naming that
// exact pattern. A subscription naming both a topic and a pattern matching it counts twice.
func (t *Tracker) Lookup(topic string) Result {
	res := Result{Topic: topic, Identities: []string{}, Nodes: 1}
	add := func(topics map[string]hub.Presence) {
		for entry, p := range topics {
			if entry == topic || hub.IsPattern(entry) && !hub.IsPattern(topic) && hub.Match(entry, topic) {
				res.Subscribers += p.Subscribers
				res.Identities = append(res.Identities, p.Identities...)
			}
		}
	}
	add(t.cfg.Hub.Presence())
	now := time.Now()
	t.mu.Lock()
	for _, p := range t.remote {
		if now.Sub(p.seen) <= t.cfg.TTL {
			add(p.snap.Topics)
			res.Nodes++
		}
	}
	t.mu.Unlock()
	slices.Sort(res.Identities)
	res.Identities = slices.Compact(res.Identities)
	return res
}
