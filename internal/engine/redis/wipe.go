package redis

import "context"

// wipe deletes every key of this log (tests, and operators resetting a log on purpose). It
// scans with a pattern built from the prefix, which validPrefix keeps free of glob characters.
func (l *Log) wipe(ctx context.Context) error {
	iter := l.rdb.Scan(ctx, 0, l.base+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := l.rdb.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}
