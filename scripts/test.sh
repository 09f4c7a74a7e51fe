#!/usr/bin/env bash
# The whole test suite, with its set-up: `make test` runs this.
# It installs what the browser and proxy tests need when it can (root + apt-get), then runs the
# Go tests with -race, the JavaScript and Python client tests, and the end-to-end tests.
# Services (NATS :4222, Redis :6379) are used when running; tests that need one skip locally
# when it is missing and fail under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/setup.sh
. scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }

step "go vet"
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

step "go test -race"
go test -race -timeout 15m ./...

step "go benchmarks (once, so they keep running)"
go test -run '^$' -bench . -benchtime 1x ./... > /dev/null

if [ -d clients/js/test ]; then
  step "JavaScript client (node --test)"
  node --test clients/js/test/
fi

if [ -d clients/python ]; then
  step "Python client (unittest)"
  go build -o bin/herald ./cmd/herald
  HERALD_BIN="$PWD/bin/herald" python3 -m unittest discover -s clients/python -t clients/python
fi

if compgen -G "e2e/*.test.mjs" > /dev/null; then
  step "end-to-end (real herald, Chromium, nginx)"
  go build -o bin/herald ./cmd/herald
  HERALD_BIN="$PWD/bin/herald" node --test --test-concurrency=1 e2e/
fi
echo
echo "all tests passed"
