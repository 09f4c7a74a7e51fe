# Herald's everyday commands. See README.md.
.PHONY: run test build bench

run:
	go run ./cmd/herald serve

build:
	go build -o bin/herald ./cmd/herald

test:
	bash scripts/test.sh

bench:
	go test -run '^$$' -bench . ./internal/...
