# Herald's everyday commands. See README.md.
.PHONY: run test build bench bench-quick bench-go

run:
	go run ./cmd/herald serve

build:
	go build -o bin/herald ./cmd/herald

test:
	bash scripts/test.sh

# The scenario matrix (herald vs the naive baseline; WebSocket and long polling vs herald's SSE;
# about 12 minutes): writes docs/benchmarks.md. Run part of it with
# `bin/herald bench --matrix --scenarios ws-fanout,poll` (names are the report's headings).
bench: build
	bin/herald bench --matrix --doc docs/benchmarks.md --json bin/benchmarks.json

# The same matrix shrunk to a smoke test (about 2 minutes); writes nothing.
bench-quick: build
	bin/herald bench --matrix --quick

# The Go micro-benchmarks (hub fan-out, SSE encoding and streaming, pattern matching, and the
# cost of one small write to a loopback socket: BenchmarkLoopbackWrite, the low-rate floor).
bench-go:
	go test -run '^$$' -bench . ./internal/...
