# Herald's everyday commands. See README.md.
.PHONY: run test build bench bench-go

run:
	go run ./cmd/herald serve

build:
	go build -o bin/herald ./cmd/herald

test:
	bash scripts/test.sh

# The scenario matrix (herald vs the naive baseline, a few minutes): writes docs/benchmarks.md.
bench: build
	bin/herald bench --matrix --doc docs/benchmarks.md --json bin/benchmarks.json

# The Go micro-benchmarks (hub fan-out, SSE encoding and streaming, pattern matching).
bench-go:
	go test -run '^$$' -bench . ./internal/...
