package hub

import "slices"

// Presence is who is subscribed to one topic or pattern on this node.
type Presence struct {
	Subscribers int      // subscriptions naming it
	Identities  []string // distinct non-empty identities among them, sorted
}

// Presence returns, for every topic and pattern that at least one subscription names, how
// many subscriptions name it on this node and who they are. A subscription to "news/*" is
// counted under "news/*", not under each topic it matches; package presence combines them.
func (h *Hub) Presence() map[string]Presence {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]Presence, len(h.idx.exact)+len(h.idx.patterns))
	for _, m := range []map[string][]*Subscription{h.idx.exact, h.idx.patterns} {
		for entry, subs := range m {
			p := Presence{Subscribers: len(subs)}
			for _, s := range subs {
				if s.Identity != "" {
					p.Identities = append(p.Identities, s.Identity)
				}
			}
			slices.Sort(p.Identities)
			p.Identities = slices.Compact(p.Identities)
			out[entry] = p
		}
	}
	return out
}
