# dkv: build, run a local 3-node cluster, test, check.   `make help` lists the targets.
#
# Every recipe is one bash script (.ONESHELL) that stops at the first failing command.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

CARGO      ?= cargo
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))
SERVER     := $(TARGET_DIR)/release/dkv-server
CLI        := $(TARGET_DIR)/release/dkv-cli
RUN_DIR    := run
NODES      := 1 2 3
# The local cluster's CA, node certificates and admin token (configs/node*.yaml).
CERT_DIR   := $(RUN_DIR)/certs
# Seconds `make cluster` waits for a leader.
LEADER_TIMEOUT_S ?= 15
# Seconds `make stop` waits for a node to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT_S ?= 10

# Integration tests start this binary (see integration/src/process.rs).
# An already-set DKV_SERVER_BIN (another build) wins.
DKV_SERVER_BIN ?= $(SERVER)
export DKV_SERVER_BIN

# Tokens banned in the deterministic core (STYLE.md §2). Comments are not checked.
LINT_IO_DIRS := src/raft src/kv src/node/core.rs
LINT_IO_PATTERN := (^|[^A-Za-z0-9_])tokio([^A-Za-z0-9_]|$$)|std::fs|std::net|std::thread|Instant::now|SystemTime|thread_rng

.PHONY: help build cluster stop clean-data test check lint-io

help: ## List the targets
	@echo "dkv make targets:"
	grep -E '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) \
	  | awk 'BEGIN { FS = ":.*## " } { printf "  make %-11s %s\n", $$1, $$2 }'
	echo
	echo "The local cluster uses configs/node{1,2,3}.yaml (RESP 7001-7003, peer mTLS 8001-8003,"
	echo "operator HTTP 9101-9103); data, logs and certificates ($(CERT_DIR)) go to $(RUN_DIR)/."

build: ## Build the release binaries (dkv-server, dkv-cli)
	$(CARGO) build --release --bins

# Shell helpers shared by cluster and stop. A pid counts as a node only if it is
# alive and is a dkv-server (a stale pid file may name a recycled pid).
define NODE_HELPERS
node_pid() {
  local file="$(RUN_DIR)/node$$1.pid" pid
  [[ -f "$$file" ]] || return 1
  pid=$$(cat "$$file" 2>/dev/null) || return 1
  [[ "$$pid" =~ ^[0-9]+$$ ]] || return 1
  kill -0 "$$pid" 2>/dev/null || return 1
  if [[ -r /proc/$$pid/cmdline ]] && ! tr '\0' ' ' < /proc/$$pid/cmdline | grep -q dkv-server; then
    return 1
  fi
  echo "$$pid"
}
config_addr() {  # config_addr N resp_addr|http_addr -> host:port from configs/nodeN.yaml
  sed -n "s/^$$2:[[:space:]]*\([^[:space:]#]*\).*/\1/p" "configs/node$$1.yaml" | head -n 1
}
port_busy() {  # port_busy host:port -> 0 if something listens there
  local host="$${1%:*}" port="$${1##*:}"
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$$(ss -Hltn "sport = :$$port" 2>/dev/null)" ]]
  else
    timeout 1 bash -c "exec 3<>/dev/tcp/$$host/$$port" 2>/dev/null
  fi
}
endef
export NODE_HELPERS

cluster: build ## Start the local 3-node cluster in the background and wait for a leader
	@eval "$$NODE_HELPERS"
	mkdir -p $(RUN_DIR)
	to_start=()
	for n in $(NODES); do
	  if pid=$$(node_pid $$n); then
	    echo "node $$n is already running (pid $$pid)"
	    continue
	  fi
	  rm -f $(RUN_DIR)/node$$n.pid
	  [[ -f configs/node$$n.yaml ]] || { echo "error: configs/node$$n.yaml is missing" >&2; exit 1; }
	  to_start+=($$n)
	done
	# Check every port before starting anything, so a conflict leaves nothing half-started.
	busy=0
	for n in "$${to_start[@]}"; do
	  for key in resp_addr http_addr metrics_addr; do
	    addr=$$(config_addr $$n $$key)
	    [[ -n "$$addr" ]] || { echo "error: no $$key in configs/node$$n.yaml" >&2; exit 1; }
	    if port_busy "$$addr"; then
	      echo "error: $$addr (node $$n $$key, configs/node$$n.yaml) is already in use by another process." >&2
	      echo "       See who: ss -ltnp 'sport = :$${addr##*:}'   Stop it, or change the port in the config." >&2
	      busy=1
	    fi
	  done
	done
	[[ $$busy == 0 ]] || exit 1
	# Peer mTLS material: made once, kept across restarts (new certs from the same
	# CA would also do; a new CA needs every node restarted with it).
	if [[ ! -f $(CERT_DIR)/ca.pem ]]; then
	  $(CLI) certs ca --dir $(CERT_DIR) --cluster-id dkv-local
	fi
	for n in $(NODES); do
	  [[ -f $(CERT_DIR)/node$$n.pem ]] || $(CLI) certs node --dir $(CERT_DIR) --id $$n --names 127.0.0.1,localhost
	done
	[[ -f $(CERT_DIR)/admin-token ]] || $(CLI) certs token --out $(CERT_DIR)/admin-token
	for n in "$${to_start[@]}"; do
	  echo "=== make cluster: starting node $$n at $$(date '+%F %T') ===" >> $(RUN_DIR)/node$$n.log
	  nohup $(SERVER) --config configs/node$$n.yaml >> $(RUN_DIR)/node$$n.log 2>&1 < /dev/null &
	  echo $$! > $(RUN_DIR)/node$$n.pid
	  echo "started node $$n (pid $$!, log $(RUN_DIR)/node$$n.log)"
	done
	show_logs() {
	  for n in $(NODES); do
	    echo "--- $(RUN_DIR)/node$$n.log (last 20 lines) ---" >&2
	    tail -n 20 $(RUN_DIR)/node$$n.log >&2 2>/dev/null || echo "(no log)" >&2
	  done
	}
	echo "waiting up to $(LEADER_TIMEOUT_S) s for a leader..."
	deadline=$$(( SECONDS + $(LEADER_TIMEOUT_S) ))
	while :; do
	  for n in "$${to_start[@]}"; do
	    if ! node_pid $$n >/dev/null; then
	      echo "error: node $$n exited during startup." >&2
	      show_logs
	      echo "Stop the other nodes with: make stop" >&2
	      exit 1
	    fi
	  done
	  if out=$$($(CLI) status --timeout-ms 500 2>&1) && grep -q '^leader: node ' <<< "$$out"; then
	    break
	  fi
	  if (( SECONDS >= deadline )); then
	    echo "error: no leader after $(LEADER_TIMEOUT_S) s. Last status:" >&2
	    echo "$$out" >&2
	    show_logs
	    echo "The nodes are left running for inspection; stop them with: make stop" >&2
	    exit 1
	  fi
	  sleep 0.5
	done
	echo
	echo "$$out"
	echo
	echo "The cluster is up. Connect with any Redis client to any node:"
	echo "  redis-cli -p 7001        (nodes: 127.0.0.1:7001, 127.0.0.1:7002, 127.0.0.1:7003)"
	echo "  $(CLI:$(CURDIR)/%=%) status    (operator ports 9101-9103; peers use mTLS on 8001-8003)"
	echo "  $(CLI:$(CURDIR)/%=%) set greeting hello && $(CLI:$(CURDIR)/%=%) get greeting"
	echo "Logs: $(RUN_DIR)/node{1,2,3}.log   Stop: make stop   Wipe data: make clean-data"

stop: ## Stop the local cluster's nodes (SIGTERM, then SIGKILL after a timeout)
	@eval "$$NODE_HELPERS"
	stopped=0
	for n in $(NODES); do
	  if ! pid=$$(node_pid $$n); then
	    rm -f $(RUN_DIR)/node$$n.pid
	    continue
	  fi
	  kill -TERM "$$pid" 2>/dev/null || true
	  deadline=$$(( SECONDS + $(STOP_TIMEOUT_S) ))
	  while kill -0 "$$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
	  if kill -0 "$$pid" 2>/dev/null; then
	    echo "node $$n (pid $$pid) did not exit within $(STOP_TIMEOUT_S) s; sending SIGKILL"
	    kill -KILL "$$pid" 2>/dev/null || true
	    while kill -0 "$$pid" 2>/dev/null; do sleep 0.1; done
	  fi
	  rm -f $(RUN_DIR)/node$$n.pid
	  echo "stopped node $$n (pid $$pid)"
	  stopped=$$(( stopped + 1 ))
	done
	(( stopped > 0 )) || echo "no local cluster node is running"

clean-data: stop ## Stop the cluster and delete its data and logs (run/)
	@rm -rf $(RUN_DIR)
	echo "removed $(RUN_DIR)/"

test: ## Run every test: unit, simulation and integration (builds release binaries first)
	@run() { echo "+ $$*"; "$$@"; }
	run $(CARGO) build --release --bins
	echo "integration tests use DKV_SERVER_BIN=$$DKV_SERVER_BIN"
	if command -v cargo-nextest >/dev/null 2>&1; then
	  # nextest skips doctests; run them first so the suite's summary line is last.
	  run $(CARGO) test --workspace --doc
	  run $(CARGO) nextest run --workspace
	else
	  echo "cargo-nextest not found; using cargo test"
	  run $(CARGO) test --workspace
	fi

check: ## Formatting, clippy (warnings are errors) and lint-io
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(MAKE) lint-io

lint-io: ## Fail if src/raft, src/kv or the node core use I/O, threads, clocks or global randomness
	@files=$$(find $(LINT_IO_DIRS) -name '*.rs' 2>/dev/null | sort)
	if [[ -z "$$files" ]]; then echo "lint-io: no sources under $(LINT_IO_DIRS)"; exit 0; fi
	hits=$$(awk -v pat='$(LINT_IO_PATTERN)' '
	  { code = $$0; sub(/\/\/.*/, "", code); if (code ~ pat) printf "%s:%d: %s\n", FILENAME, FNR, $$0 }
	' $$files)
	if [[ -n "$$hits" ]]; then
	  echo "lint-io: banned in $(LINT_IO_DIRS) (tokio, std::fs, std::net, std::thread, Instant::now, SystemTime, thread_rng):" >&2
	  echo "$$hits" >&2
	  echo "The core is deterministic: time comes from tick(), randomness from the seeded RNG, I/O from the driver (STYLE.md §2)." >&2
	  exit 1
	fi
	echo "lint-io: ok ($$(wc -w <<< "$$files") files in $(LINT_IO_DIRS))"

# --- benchmarks (issue: faster than Redis with fsync) ---------------------------
BENCH_NODES ?= 3
BENCH_VALUE_SIZE ?= 64
BENCH_ROUNDS ?= 3
BENCH_SCALE ?= 1
BENCH_MEMORY_KEYS ?= 1000000
BENCH_MEMORY_COLLECTIONS ?= 100000
BENCH_READS ?= both
SNAP_KEYS ?= 1000000
.PHONY: bench
bench: build ## dkv vs Redis (appendfsync always / no persistence), interleaved; table + target/bench/results.csv
	python3 bench/bench.py --server-bin $(SERVER) --nodes $(BENCH_NODES) --value-size $(BENCH_VALUE_SIZE) \
	  --rounds $(BENCH_ROUNDS) --scale $(BENCH_SCALE) --memory-keys $(BENCH_MEMORY_KEYS) \
	  --memory-collections $(BENCH_MEMORY_COLLECTIONS) --reads $(BENCH_READS) $(if $(BENCH_KEEP_LOGS),--keep-logs)

.PHONY: bench-snapshot
bench-snapshot: build ## Snapshot time and size, data-dir size and restart-to-serving for 1M keys (SNAP_KEYS=N)
	python3 bench/snapshot.py --server-bin $(SERVER) --nodes $(BENCH_NODES) --keys $(SNAP_KEYS)

.PHONY: bench-hot
bench-hot: ## criterion benches of the hot paths: RESP decode/encode, raft commit, WAL batch, kv apply
	$(CARGO) bench --bench hot_paths

.PHONY: bench-store
bench-store: ## Storage benchmark: fsync'd WAL appends vs raw fdatasync (DKV_BENCH_DIR=dir)
	$(CARGO) bench --bench store

# ---- chaos (issue 6): fault testing on real processes, histories checked.
# make chaos SCHEDULE=<name|all> DURATION=<s> NODES=<n> [SEED=<n>]
# Schedules: kill-leader random-kill pause-leader isolate-leader majority-minority
# bridge flapping rolling-restart membership combined (all: rotate through them).
SCHEDULE ?= all
DURATION ?= 60
# NODES means the local cluster's node list elsewhere; here, given on the command
# line, it is the cluster size.
CHAOS_NODES ?= $(if $(filter command line,$(origin NODES)),$(NODES),3)
SEED ?=

.PHONY: chaos
chaos: ## Fault-test a real cluster: make chaos SCHEDULE=… DURATION=… NODES=…
	$(CARGO) build --release --bins
	CHAOS_SCHEDULE='$(SCHEDULE)' CHAOS_DURATION='$(DURATION)' CHAOS_NODES='$(CHAOS_NODES)' CHAOS_SEED='$(SEED)' \
	  $(CARGO) test --release -p dkv-integration --test chaos chaos_from_env -- --nocapture

# Queue chaos (issue 13): LPUSH producers, BLMOVE+LREM consumers on every node under
# faults. `make queue-chaos DURATION=60 QUEUE_SCHEDULES=kill-leader,flapping`
QUEUE_SCHEDULES ?= kill-leader,pause-leader,majority-minority
.PHONY: queue-chaos
queue-chaos: ## Reliable-queue fault test: make queue-chaos DURATION=… QUEUE_SCHEDULES=…
	$(CARGO) build --release --bins
	QUEUE_CHAOS_SECS='$(DURATION)' QUEUE_CHAOS_SCHEDULES='$(QUEUE_SCHEDULES)' \
	  $(CARGO) test --release -p dkv-integration --test queue_chaos -- --nocapture

# Stream chaos (issue 16): XADD producers, a consumer group (XREADGROUP, XACK,
# XAUTOCLAIM, XCLAIM) on every node under faults. `make stream-chaos DURATION=300
# STREAM_SCHEDULES=kill-leader,flapping`
STREAM_SCHEDULES ?= kill-leader,pause-leader,majority-minority
.PHONY: stream-chaos
stream-chaos: ## Stream consumer-group fault test: make stream-chaos DURATION=… STREAM_SCHEDULES=…
	$(CARGO) build --release --bins
	STREAM_CHAOS_SECS='$(DURATION)' STREAM_CHAOS_SCHEDULES='$(STREAM_SCHEDULES)' \
	  $(CARGO) test --release -p dkv-integration --test stream_chaos -- --nocapture

# Lock chaos (issue 14): redis-py-style locks (SET NX PX + a release script)
# around INCR on every node under faults. Needs EVAL in dkv: until then the
# dkv run is an ignored test, included here. `make lock-chaos DURATION=60
# LOCK_SCHEDULES=kill-leader,flapping`
LOCK_SCHEDULES ?= kill-leader,pause-leader,majority-minority
.PHONY: lock-chaos
lock-chaos: ## Lock-safety fault test: make lock-chaos DURATION=… LOCK_SCHEDULES=…
	$(CARGO) build --release --bins
	LOCK_CHAOS_SECS='$(DURATION)' LOCK_CHAOS_SCHEDULES='$(LOCK_SCHEDULES)' \
	  $(CARGO) test --release -p dkv-integration --test lock_chaos -- --include-ignored --nocapture

# Deterministic simulation over a seed range (src/sim/). Each failure prints its
# seed and a replay command. `make sim SEEDS=100000 START=0 STEPS=3000`
SEEDS ?= 1000
START ?= 0
STEPS ?= 3000
.PHONY: sim
sim: ## Simulate a seed range: make sim SEEDS=N START=K [STEPS=3000]
	SIM_SEEDS='$(SEEDS)' SIM_START='$(START)' SIM_STEPS='$(STEPS)' \
	  $(CARGO) test --release --lib sim::seed_range -- --nocapture --exact

# Differential test against a real redis-server (integration/tests/difftest.rs).
# `make difftest N=1000000 SEED=7` runs N generated steps from seed SEED; without
# them, the CI seeds (1,2,3,4) and step count.
.PHONY: difftest
difftest: ## Compare dkv with redis-server: make difftest N=… SEED=…
	$(CARGO) build --release --bins
	DIFFTEST_SEEDS='$(or $(SEED),1,2,3,4)' DIFFTEST_COMMANDS='$(or $(N),5500)' \
	  $(CARGO) test --release -p dkv-integration --test difftest -- --nocapture

# Keyspace notifications against redis-server (the difftest's command stream,
# every dkv node's event stream compared with Redis's).
.PHONY: events-difftest
events-difftest: ## Compare dkv's keyspace events with redis-server: make events-difftest N=… SEED=…
	$(CARGO) build --release --bins
	DIFFTEST_EVENT_SEED='$(or $(SEED),11)' DIFFTEST_EVENT_COMMANDS='$(or $(N),5500)' \
	  $(CARGO) test --release -p dkv-integration --test difftest keyspace_events -- --nocapture

# The Pub/Sub difftest (integration/tests/pubsub_difftest.rs): N generated
# steps per seed over four connections, every frame compared with redis-server.
.PHONY: pubsub-difftest
pubsub-difftest: ## Compare dkv's Pub/Sub with redis-server: make pubsub-difftest N=… SEED=…
	$(CARGO) build --release --bins
	PUBSUB_DIFFTEST_SEEDS='$(or $(SEED),1,2,3,4)' PUBSUB_DIFFTEST_STEPS='$(or $(N),1500)' \
	  $(CARGO) test --release -p dkv-integration --test pubsub_difftest -- --nocapture

# The scripting difftest (integration/tests/script_difftest.rs): N generated
# script calls per seed, compared byte for byte with redis-server.
.PHONY: script-difftest
script-difftest: ## Compare dkv's scripting with redis-server: make script-difftest N=… SEED=…
	$(CARGO) build --release --bins
	SCRIPT_DIFFTEST_SEEDS='$(or $(SEED),1,2,3,4)' SCRIPT_DIFFTEST_CALLS='$(or $(N),5100)' \
	  $(CARGO) test --release -p dkv-integration --test script_difftest -- --nocapture --include-ignored
