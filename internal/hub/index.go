package hub

// index maps topics and patterns to subscriptions. The slices are copy-on-write: lookups hand
// out a slice that no later change modifies, so fan-out runs without holding the hub's lock.
type index struct {
	exact    map[string][]*Subscription
	patterns map[string][]*Subscription
	plist    []string // keys of patterns, for iteration without map overhead
}

func newIndex() index {
	return index{exact: make(map[string][]*Subscription), patterns: make(map[string][]*Subscription)}
}

func (ix *index) add(s *Subscription) {
	for _, e := range s.filter.Entries() {
		if IsPattern(e) {
			if _, ok := ix.patterns[e]; !ok {
				ix.plist = append(ix.plist[:len(ix.plist):len(ix.plist)], e)
			}
			ix.patterns[e] = appendCopy(ix.patterns[e], s)
		} else {
			ix.exact[e] = appendCopy(ix.exact[e], s)
		}
	}
}

func (ix *index) remove(s *Subscription) {
	for _, e := range s.filter.Entries() {
		if IsPattern(e) {
			if subs := removeCopy(ix.patterns[e], s); len(subs) > 0 {
				ix.patterns[e] = subs
			} else {
				delete(ix.patterns, e)
				ix.plist = removeString(ix.plist, e)
			}
		} else if subs := removeCopy(ix.exact[e], s); len(subs) > 0 {
			ix.exact[e] = subs
		} else {
			delete(ix.exact, e)
		}
	}
}

// lookup appends to dst the subscription lists that may want a message on topics. A
// subscription can appear in several lists; Subscription.offer drops the repeats by Seq.
func (ix *index) lookup(topics []string, dst [][]*Subscription) [][]*Subscription {
	for _, t := range topics {
		if subs := ix.exact[t]; len(subs) > 0 {
			dst = append(dst, subs)
		}
		for _, p := range ix.plist {
			if Match(p, t) {
				dst = append(dst, ix.patterns[p])
			}
		}
	}
	return dst
}

// count returns the number of subscriptions on exact topic t.
func (ix *index) count(t string) int { return len(ix.exact[t]) }

func appendCopy(subs []*Subscription, s *Subscription) []*Subscription {
	out := make([]*Subscription, len(subs), len(subs)+1)
	copy(out, subs)
	return append(out, s)
}

func removeCopy(subs []*Subscription, s *Subscription) []*Subscription {
	out := make([]*Subscription, 0, len(subs))
	for _, x := range subs {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func removeString(list []string, s string) []string {
	out := make([]string, 0, len(list))
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
