package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// PutPresence stores node's presence snapshot under "{prefix}:presence:<node>" with an
// expiry, and lists the node in a sorted set scored by that expiry.
func (l *Log) PutPresence(ctx context.Context, node string, snapshot []byte, ttl time.Duration) error {
	exp := time.Now().Add(ttl).UnixMilli()
	_, err := l.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, l.base+"presence:"+node, snapshot, ttl)
		p.ZAdd(ctx, l.base+"nodes", goredis.Z{Score: float64(exp), Member: node})
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: presence: %w", mapErr(err))
	}
	return nil
}

// Presence returns the snapshots of every node whose entry has not expired.
func (l *Log) Presence(ctx context.Context) (map[string][]byte, error) {
	nodesKey := l.base + "nodes"
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := l.rdb.ZRemRangeByScore(ctx, nodesKey, "-inf", "("+now).Err(); err != nil {
		return nil, fmt.Errorf("redis: presence: %w", mapErr(err))
	}
	nodes, err := l.rdb.ZRange(ctx, nodesKey, 0, -1).Result()
	if err != nil || len(nodes) == 0 {
		return nil, mapErr(err)
	}
	keys := make([]string, len(nodes))
	for i, n := range nodes {
		keys[i] = l.base + "presence:" + n
	}
	vals, err := l.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: presence: %w", mapErr(err))
	}
	out := make(map[string][]byte, len(nodes))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[nodes[i]] = []byte(s)
		}
	}
	return out, nil
}
