package cluster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestThreeNodesNATS(t *testing.T)  { testThreeNodes(t, sharedNATS(t)) }
func TestThreeNodesRedis(t *testing.T) { testThreeNodes(t, sharedRedis(t)) }

// testThreeNodes runs three herald processes on one engine with subscribers spread across
// them and a publisher on the first. Midway the third node is killed with SIGKILL; its
// subscribers reconnect to another node with their last id. Every subscriber must end with
// the full sequence, in order, without duplicates or gap notices.
func testThreeNodes(t *testing.T, engine string) {
	nodes := []*node{startNode(t, engine, "127.0.0.1:0", true), startNode(t, engine, "127.0.0.1:0", true),
		startNode(t, engine, "127.0.0.1:0", true)}
	const total, perNode = 300, 2
	topic := "orders/" + randomName("")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Each subscriber starts on "its" node and fails over to the next ones.
	var subs []*subscriber
	for i := range nodes {
		for range perNode {
			order := append(append([]*node{}, nodes[i:]...), nodes[:i]...)
			subs = append(subs, &subscriber{nodes: order, topic: topic})
		}
	}
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() { errs[i] = s.run(ctx, total) })
	}
	// Subscribers are connected once presence counts them all (each node knows its own at
	// once, the others' within two presence intervals): from then on nothing is "before".
	waitFor(t, "presence to count every subscriber on every node", func() bool {
		for _, n := range nodes {
			var p struct{ Subscribers int }
			if code, err := getJSON(n.URL+"/presence?topic="+topic, &p); err != nil || code != 200 || p.Subscribers != len(subs) {
				return false
			}
		}
		return true
	})

	for i := range total {
		if i == total/3 {
			nodes[2].kill()
		}
		if _, err := publish(ctx, nodes[:1], topic, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	hops := 0
	for i, s := range subs {
		if errs[i] != nil {
			t.Errorf("subscriber %d: %v", i, errs[i])
		}
		checkSequence(t, fmt.Sprintf("subscriber %d", i), s.got, total)
		if len(s.gaps) > 0 {
			t.Errorf("subscriber %d got gap notices %v, want none", i, s.gaps)
		}
		hops += s.hops
	}
	if hops < perNode {
		t.Errorf("%d reconnections in all, want at least %d (the killed node's subscribers)", hops, perNode)
	}

	// Presence forgets the killed node's subscribers once its snapshot expires.
	waitFor(t, "presence to drop the killed node", func() bool {
		var p struct{ Subscribers, Nodes int }
		getJSON(nodes[0].URL+"/presence?topic="+topic, &p)
		return p.Nodes == 2
	})
}
