// Package cluster holds Herald's multi-node tests: several real herald processes on one shared
// engine (NATS JetStream or Redis), nodes killed mid-run, and engines restarted under load.
// It has no code of its own; see the _test files.
package cluster
