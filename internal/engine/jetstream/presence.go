package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Presence snapshots live in a key-value bucket "<Stream>_PRESENCE", one key per node, in
// memory and expiring after the TTL of the first PutPresence. Nothing here is durable on
// purpose: presence is rebuilt from live nodes within one interval.

type presenceKV struct {
	once sync.Mutex
	kv   jetstream.KeyValue
}

func (l *Log) presenceBucket(ctx context.Context, ttl time.Duration) (jetstream.KeyValue, error) {
	l.presence.once.Lock()
	defer l.presence.once.Unlock()
	if l.presence.kv != nil {
		return l.presence.kv, nil
	}
	name := l.stream + "_PRESENCE"
	kv, err := l.js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = l.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: name, TTL: ttl, History: 1, Storage: jetstream.MemoryStorage, Replicas: l.cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = l.js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: presence bucket: %w", mapErr(err))
	}
	l.presence.kv = kv
	return kv, nil
}

// PutPresence stores node's presence snapshot.
func (l *Log) PutPresence(ctx context.Context, node string, snapshot []byte, ttl time.Duration) error {
	kv, err := l.presenceBucket(ctx, ttl)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, node, snapshot); err != nil {
		return fmt.Errorf("jetstream: presence: %w", mapErr(err))
	}
	return nil
}

// Presence returns the latest snapshot of every node that has one in the bucket.
func (l *Log) Presence(ctx context.Context) (map[string][]byte, error) {
	l.presence.once.Lock()
	kv := l.presence.kv
	l.presence.once.Unlock()
	if kv == nil {
		return nil, nil
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("jetstream: presence: %w", mapErr(err))
	}
	out := make(map[string][]byte)
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("jetstream: presence %s: %w", k, mapErr(err))
		}
		out[k] = e.Value()
	}
	return out, nil
}
