// Package faults proves Herald's delivery promise under faults. It holds the oracle that every
// fault test checks subscribers against, a TCP proxy that injects network faults, and the
// resuming clients and publishers the tests (and the soak runner) drive.
//
// The oracle's rule, from docs/guarantees.md: every acknowledged (2xx) publish reaches every
// subscriber that stays connected or resumes within retention, once, in log order; anything it
// misses is covered by an explicit gap notice; a refused publish (4xx/5xx) is never delivered.
// Payloads are "<publisher>:<sequence>", so a delivery names the publish it came from.
package faults

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-push/herald/internal/hub"
)

// Payload is the data of a test publish.
func Payload(publisher string, seq int) string { return publisher + ":" + strconv.Itoa(seq) }

// Outcome of one publish attempt.
type Outcome int

const (
	Acked     Outcome = iota // 2xx: must be delivered
	Refused                  // 4xx/5xx: must never be delivered
	Uncertain                // no answer (connection lost): may or may not be delivered
)

type publish struct {
	topic   string
	outcome Outcome
	at      pos // log position when acknowledged
}

// pos is a log position: the epoch (numbered in the order the oracle first saw it) and the
// sequence within it. A log that lost its data starts a new epoch whose sequences start again,
// so positions order by epoch first.
type pos struct {
	epoch int
	seq   uint64
}

func (a pos) cmp(b pos) int {
	if a.epoch != b.epoch {
		return cmp.Compare(a.epoch, b.epoch)
	}
	return cmp.Compare(a.seq, b.seq)
}

// Oracle records what publishers were told and checks what subscribers received.
type Oracle struct {
	mu   sync.Mutex
	pubs map[string]*publish // by payload
	subs []*Subscriber

	emu    sync.Mutex // taken alone, never while taking another lock
	epochs map[string]int
}

// NewOracle returns an empty oracle.
func NewOracle() *Oracle {
	return &Oracle{pubs: make(map[string]*publish), epochs: make(map[string]int)}
}

// pos parses an id into a position, numbering a new epoch after those already seen.
func (o *Oracle) pos(id string) (pos, error) {
	epoch, seq, err := hub.ParseID(id)
	if err != nil {
		return pos{}, err
	}
	o.emu.Lock()
	defer o.emu.Unlock()
	n, ok := o.epochs[epoch]
	if !ok {
		n = len(o.epochs)
		o.epochs[epoch] = n
	}
	return pos{n, seq}, nil
}

// Record notes the outcome of publishing payload to topic; id is the acknowledged id.
func (o *Oracle) Record(topic, payload string, outcome Outcome, id string) error {
	p := &publish{topic: topic, outcome: outcome}
	if outcome == Acked {
		at, err := o.pos(id)
		if err != nil {
			return fmt.Errorf("faults: acknowledged %s with id %q: %w", payload, id, err)
		}
		p.at = at
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.pubs[payload]; ok {
		return fmt.Errorf("faults: payload %s published twice", payload)
	}
	o.pubs[payload] = p
	return nil
}

// Counts returns how many publishes ended in each outcome.
func (o *Oracle) Counts() (acked, refused, uncertain int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range o.pubs {
		switch p.outcome {
		case Acked:
			acked++
		case Refused:
			refused++
		default:
			uncertain++
		}
	}
	return
}

// Subscriber returns the record of a subscriber to topics (exact topics, no patterns) that
// must receive every acknowledged publish after sequence from (0: all of them) of the first
// epoch the oracle sees, and every acknowledged publish of later epochs.
func (o *Oracle) Subscriber(name string, topics []string, from uint64) *Subscriber {
	s := &Subscriber{o: o, name: name, topics: topics, from: pos{0, from}}
	o.mu.Lock()
	o.subs = append(o.subs, s)
	o.mu.Unlock()
	return s
}

// Subscriber is what one logical client (across all its reconnections) received.
type Subscriber struct {
	o      *Oracle
	name   string
	topics []string
	from   pos

	mu       sync.Mutex
	got      []delivery
	gaps     []gapAt
	seen     map[string]bool
	problems []string
	resumes  int
	left     bool // the client went away for good: nothing more is owed to it
}

// Leave marks the subscriber as gone for good (churn): what it received is still checked for
// duplicates, order and refused publishes, but nothing more is owed to it.
func (s *Subscriber) Leave() {
	s.mu.Lock()
	s.left = true
	s.mu.Unlock()
}

type delivery struct {
	at      pos
	payload string
}

type gapAt struct {
	after  pos // the last position received before the notice (from, if none)
	reason string
}

// last is the position of the last delivery, or from before the first.
func (s *Subscriber) last() pos {
	if len(s.got) == 0 {
		return s.from
	}
	return s.got[len(s.got)-1].at
}

// Deliver records one delivered event. Duplicates, order and a silent change of epoch (a log
// that lost its data) are checked here, at once.
func (s *Subscriber) Deliver(id, payload string) {
	at, err := s.o.pos(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = make(map[string]bool)
	}
	last := s.last()
	switch {
	case err != nil:
		s.problem("event %q with bad id %q", payload, id)
	case s.seen[payload]:
		s.problem("duplicate: %s (id %s)", payload, id)
	case len(s.got) > 0 && at.cmp(last) <= 0:
		s.problem("out of order: %s id %s after seq %d", payload, id, last.seq)
	case at.epoch != last.epoch && !s.gapAfter(last):
		s.problem("%s id %s starts a new epoch without a gap notice", payload, id)
	}
	s.seen[payload] = true
	s.got = append(s.got, delivery{at, payload})
}

func (s *Subscriber) gapAfter(p pos) bool {
	return slices.ContainsFunc(s.gaps, func(g gapAt) bool { return g.after == p })
}

// Gap records a gap notice with its visible reason.
func (s *Subscriber) Gap(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gaps = append(s.gaps, gapAt{after: s.last(), reason: reason})
}

// Resumed counts one reconnection.
func (s *Subscriber) Resumed() {
	s.mu.Lock()
	s.resumes++
	s.mu.Unlock()
}

// Received returns how many events were delivered.
func (s *Subscriber) Received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *Subscriber) problem(format string, args ...any) {
	if len(s.problems) < 20 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

// Report is the oracle's verdict.
type Report struct {
	Acked, Refused, Uncertain int
	Deliveries, Resumes       int
	Gaps                      []string // "subscriber: reason" for every gap notice seen
	Problems                  []string // empty means the promise was kept
}

func (r Report) String() string {
	return fmt.Sprintf("%d acknowledged, %d refused, %d uncertain publishes; %d deliveries, %d resumes, %d gap notices, %d problems",
		r.Acked, r.Refused, r.Uncertain, r.Deliveries, r.Resumes, len(r.Gaps), len(r.Problems))
}

// Check compares every subscriber with the publishes. Call it when publishing has stopped and
// subscribers have caught up (see Missing).
func (o *Oracle) Check() Report {
	var r Report
	r.Acked, r.Refused, r.Uncertain = o.Counts()
	o.mu.Lock()
	subs := slices.Clone(o.subs)
	o.mu.Unlock()
	for _, s := range subs {
		missing, problems := o.check(s)
		s.mu.Lock()
		r.Deliveries += len(s.got)
		r.Resumes += s.resumes
		for _, g := range s.gaps {
			r.Gaps = append(r.Gaps, s.name+": "+g.reason)
		}
		s.mu.Unlock()
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("%d acknowledged publishes never delivered and not covered by a gap notice, e.g. %s",
				len(missing), strings.Join(missing[:min(5, len(missing))], ", ")))
		}
		for _, p := range problems {
			r.Problems = append(r.Problems, s.name+": "+p)
		}
	}
	return r
}

// Missing returns how many acknowledged publishes s still lacks (for waiting until caught up).
func (o *Oracle) Missing(s *Subscriber) int {
	m, _ := o.check(s)
	return len(m)
}

// check returns the acknowledged payloads s lacks without a gap to explain them, and problems
// found in what it received.
func (o *Oracle) check(s *Subscriber) (missing, problems []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	problems = slices.Clone(s.problems)
	for _, d := range s.got {
		p, ok := o.pubs[d.payload]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("delivered %s, which no publisher sent (or not yet recorded)", d.payload))
		case p.outcome == Refused:
			problems = append(problems, fmt.Sprintf("delivered %s, whose publish was refused", d.payload))
		case !slices.Contains(s.topics, p.topic):
			problems = append(problems, fmt.Sprintf("delivered %s of topic %s, not subscribed", d.payload, p.topic))
		case p.outcome == Acked && p.at != d.at:
			problems = append(problems, fmt.Sprintf("delivered %s at %v, acknowledged as %v (epoch number, seq)", d.payload, d.at, p.at))
		}
	}
	if s.left {
		return nil, problems
	}
	for payload, p := range o.pubs {
		if p.outcome != Acked || p.at.cmp(s.from) <= 0 || !slices.Contains(s.topics, p.topic) || s.seen[payload] {
			continue
		}
		if !s.excused(p.at) {
			missing = append(missing, payload)
		}
	}
	slices.Sort(missing)
	return missing, problems
}

// excused reports whether a gap notice covers at: it came after the subscriber's last
// delivery before at and before its first delivery after at.
func (s *Subscriber) excused(at pos) bool {
	i, _ := slices.BinarySearchFunc(s.got, at, func(d delivery, at pos) int { return d.at.cmp(at) })
	before := s.from
	if i > 0 {
		before = s.got[i-1].at
	}
	return s.gapAfter(before)
}

// WaitCaughtUp waits until no subscriber in subs lacks an acknowledged publish, or within
// passes, and reports whether they all caught up.
func (o *Oracle) WaitCaughtUp(subs []*Subscriber, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for _, s := range subs {
		for o.Missing(s) > 0 {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return true
}
