package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/herald-push/herald/client"
	"github.com/herald-push/herald/internal/engine/memory"
	"github.com/herald-push/herald/internal/hub"
	"github.com/herald-push/herald/internal/server"
)

// exampleServer runs a Herald server in-process for the examples; in your code the URL is
// that of your `herald serve` and the key comes from its data directory.
func exampleServer() (url, key string, stop func()) {
	h := hub.New(hub.Config{Log: memory.New(memory.Config{})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	for !h.Ready() {
		time.Sleep(time.Millisecond)
	}
	srv := httptest.NewServer(server.New(server.Config{Hub: h, PublishKeys: []string{"hk_example_key_0123456789"}}))
	return srv.URL, "hk_example_key_0123456789", func() { h.Close(); srv.Close(); cancel(); <-done }
}

func ExampleClient_Publish() {
	url, key, stop := exampleServer()
	defer stop()

	c := client.New(url, client.Options{Key: key})
	id, err := c.Publish(context.Background(), client.Message{
		Topic: "orders/42",
		Event: "order.updated",
		Data:  `{"status":"paid"}`,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id != "")
	// Output: true
}

func ExampleClient_Subscribe() {
	url, key, stop := exampleServer()
	defer stop()
	c := client.New(url, client.Options{Key: key})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Publish a retained value: a new subscriber receives the current value of each topic first.
	c.Publish(ctx, client.Message{Topic: "orders/42", Data: "created", Retain: true})

	n := 0
	for m, err := range c.Subscribe(ctx, []string{"orders/42", "news/*"}, "") {
		var gap *client.Gap
		switch {
		case errors.As(err, &gap):
			fmt.Println("missed messages: reload the state", gap.Reason)
			continue
		case err != nil:
			log.Fatal(err)
		}
		fmt.Println(m.Topic, m.Event, m.Data)
		// Keep m.ID: passing it as lastID to a later Subscribe resumes right after it.
		if n++; n == 3 {
			break
		}
		if n == 1 { // the retained value arrived, so the subscription is live: publish more
			go func() {
				c.Publish(ctx, client.Message{Topic: "orders/42", Event: "order.updated", Data: "paid"})
				c.Publish(ctx, client.Message{Topic: "news/sport", Data: "Kick-off!"})
			}()
		}
	}
	// Output:
	// orders/42  created
	// orders/42 order.updated paid
	// news/sport  Kick-off!
}

func ExampleClient_PublishBatch() {
	url, key, stop := exampleServer()
	defer stop()

	c := client.New(url, client.Options{Key: key})
	ids, err := c.PublishBatch(context.Background(), []client.Message{
		{Topic: "prices/EURUSD", Data: "1.0841", Retain: true},
		{Topic: "prices/GBPUSD", Data: "1.2710", Retain: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ids), "messages published")
	// Output: 2 messages published
}
