#!/usr/bin/env bash
# 1 node vs 3 nodes on the real NATS (127.0.0.1:4222), measured by herald bench in one script.
set -u
cd "$(dirname "$0")/.." && go build -o bin/herald ./cmd/herald || exit 1
BIN=$PWD/bin/herald
P=BENCH$RANDOM
start() { # port dir
  $BIN serve --addr 127.0.0.1:$1 --data-dir $2 --engine "nats://127.0.0.1:4222?prefix=$P" \
    --publish-keys herald-bench-key --limits-conns-per-ip 0 --limits-conns-per-identity 0 \
    --limits-handshakes 0 --log-level warn > /dev/null 2>&1 &
  echo $!
}
D=$(mktemp -d)
a=$(start 19101 $D/a); b=$(start 19102 $D/b); c=$(start 19103 $D/c)
sleep 3
common="--mode fanout --transport sse --n 3000 --rate 100 --tick 50ms --duration 10s"
echo "== 1 node"; $BIN bench --url http://127.0.0.1:19101 --pid $a $common 2>/dev/null
echo "== 3 nodes"; $BIN bench --url http://127.0.0.1:19101 --pid $a --nodes http://127.0.0.1:19102,http://127.0.0.1:19103 --node-pids $b,$c $common 2>/dev/null
kill $a $b $c; wait
rm -rf $D
