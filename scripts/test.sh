#!/usr/bin/env bash
# `make test`: installs the real services if missing, starts Mosquitto and VictoriaMetrics on
# free loopback ports with data in a temp dir, runs formatting and lint checks and the whole
# test suite against them, and stops them again — also when something fails.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/fetch-model.sh
if [ -x scripts/fetch-gemma.sh ]; then ./scripts/fetch-gemma.sh; fi

WORK=$(mktemp -d /tmp/millwright-test.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "error: $2 did not start on port $1" >&2; return 1
}

MQTT_PORT=$(free_port)
mkdir -p "$WORK/mosquitto"
cat > "$WORK/mosquitto/mosquitto.conf" <<CONF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 200000
message_size_limit 0
CONF
MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$MOSQ" -c "$WORK/mosquitto/mosquitto.conf" >"$WORK/mosquitto/log" 2>&1 &
PIDS+=($!)
wait_port "$MQTT_PORT" mosquitto

VM_PORT=$(free_port)
victoria-metrics -httpListenAddr="127.0.0.1:$VM_PORT" -storageDataPath="$WORK/vm" \
  -retentionPeriod=100y -search.latencyOffset=0s >"$WORK/vm.log" 2>&1 &
PIDS+=($!)
wait_port "$VM_PORT" victoria-metrics

export MILLWRIGHT_TEST_MQTT="127.0.0.1:$MQTT_PORT"
export MILLWRIGHT_TEST_VM="http://127.0.0.1:$VM_PORT"
echo "services: mosquitto on $MILLWRIGHT_TEST_MQTT, victoria-metrics on $MILLWRIGHT_TEST_VM"

# The e2e tests run the demo and the benchmarks: the binary's `demo` and `bench` features on.
FEATURES="millwright/demo,millwright/bench"
cargo fmt --all -- --check
cargo build --workspace --all-targets --features "$FEATURES"
cargo test --workspace --no-fail-fast --features "$FEATURES"
cargo clippy --workspace --all-targets --features "$FEATURES" -- -D warnings
# The lean production node (no demo, no benchmarks) compiles and is lint-clean too.
cargo clippy -p millwright --no-default-features --all-targets -- -D warnings
