#!/usr/bin/env bash
# `make soak`: the node under mixed MQTT and Modbus load for SOAK_SECONDS (default 600) through
# the disk outbox, with a broker restart, a database outage and a dead Modbus device injected.
# At the end: every MQTT reading the broker acknowledged is in VictoriaMetrics (zero lost), the
# Modbus readings of the live device arrived, the dead device was reported offline, and the
# node's RSS at start and end is printed. Not part of `make test` (it takes 10+ minutes).
#
# Needs: mosquitto, victoria-metrics (scripts/install-deps.sh), and release builds of
# `millwright` (features bench) and `millwright-sim` (the Makefile target builds them).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SOAK_SECONDS:-600}
ROUND=${SOAK_ROUND_READINGS:-20000}   # readings per publishing round (one round every 5 s)
BIN=./target/release/millwright
SIM=./target/release/millwright-sim
for b in mosquitto victoria-metrics; do command -v "$b" >/dev/null || { echo "soak: $b not installed (make deps)" >&2; exit 1; }; done
[ -x "$BIN" ] && [ -x "$SIM" ] || { echo "soak: build first (make soak does)" >&2; exit 1; }

work=$(mktemp -d /tmp/millwright-soak.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "soak: nothing listens on $1" >&2; exit 1; }
MQ=$(free_port); VMP=$(free_port); MB=$(free_port); DEAD=$(free_port); MET=$(free_port)
VM="http://127.0.0.1:$VMP"

cat > "$work/mosquitto.conf" <<CONF
listener $MQ 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/
max_queued_messages 0
CONF
start_mosquitto() { mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 & MQPID=$!; pids+=("$MQPID"); wait_port "$MQ"; }
start_vm() { victoria-metrics -httpListenAddr=127.0.0.1:$VMP -storageDataPath="$work/vm" -retentionPeriod=100y -search.latencyOffset=0s >>"$work/vm.log" 2>&1 & VMPID=$!; pids+=("$VMPID"); wait_port "$VMP"; }
start_mosquitto; start_vm
"$SIM" --machine "pump:P-101@127.0.0.1:$MB" --speed 1 >"$work/sim.log" 2>&1 & pids+=($!); wait_port "$MB"

cat > "$work/millwright.toml" <<CONF
[site]
name = "soak"
[mqtt]
host = "127.0.0.1"
port = $MQ
client_id = "soak-node"
clean_session = false
[[mqtt.subscriptions]]
topic = "bench/{asset}"
format = "json"
qos = 1
[influxdb]
url = "$VM"
org = "soak"
bucket = "soak"
retry_max_ms = 2000
[influxdb.outbox]
dir = "outbox"
[[modbus.devices]]
name = "pump-live"
asset = "P-101"
transport = "tcp"
host = "127.0.0.1"
port = $MB
unit_id = 1
poll_interval_ms = 200
timeout_ms = 300
[[modbus.devices.fields]]
signal = "bearing_temp_c"
function = "input"
address = 14
type = "i16"
scale = 0.01
unit = "°C"
[[modbus.devices]]
name = "pump-dead"
asset = "P-DEAD"
transport = "tcp"
host = "127.0.0.1"
port = $DEAD
unit_id = 1
poll_interval_ms = 500
timeout_ms = 300
[[modbus.devices.fields]]
signal = "bearing_temp_c"
function = "input"
address = 14
type = "i16"
scale = 0.01
[node]
metrics_listen = "127.0.0.1:$MET"
metrics_interval_s = 0
CONF
"$BIN" check-config "$work/millwright.toml" >/dev/null
"$BIN" run --config "$work/millwright.toml" 2>"$work/node.log" & NODE=$!; pids+=("$NODE")
wait_port "$MET"; sleep 2
rss() { awk '/VmRSS/ {print $2/1024 " MB"}' "/proc/$NODE/status"; }
metric() { curl -s "http://127.0.0.1:$MET/metrics" | awk -v n="$1" '$1==n {print $2}'; }

published=0; t0=$(date +%s); rss_start=""
broker_restarted=0; db_down_at=0; db_up=1
while :; do
  now=$(( $(date +%s) - t0 )); [ "$now" -ge "$SECS" ] && break
  [ -z "$rss_start" ] && [ "$now" -ge 30 ] && rss_start=$(rss)
  if [ "$broker_restarted" = 0 ] && [ "$now" -ge $((SECS / 3)) ]; then
    echo "soak: $now s: restarting the broker"; kill "$MQPID"; wait "$MQPID" 2>/dev/null || true; sleep 3; start_mosquitto; broker_restarted=1
  fi
  if [ "$db_up" = 1 ] && [ "$db_down_at" = 0 ] && [ "$now" -ge $((SECS / 2)) ]; then
    echo "soak: $now s: stopping VictoriaMetrics for 60 s"; kill "$VMPID"; wait "$VMPID" 2>/dev/null || true; db_down_at=$now; db_up=0
  fi
  if [ "$db_up" = 0 ] && [ "$now" -ge $((db_down_at + 60)) ]; then
    echo "soak: $now s: starting VictoriaMetrics again (outbox: $(metric millwright_influx_backlog_points) points)"; start_vm; db_up=1
  fi
  "$BIN" bench ingest-publisher --broker "127.0.0.1:$MQ" --mode batch --readings "$ROUND" --batch 100 --first "$published" 2>>"$work/publisher.log"
  published=$((published + ROUND))
  sleep 5
done
rss_end=$(rss)
echo "soak: published $published MQTT readings (all acknowledged by the broker); waiting for the outbox to drain"
for _ in $(seq 1 600); do [ "$(metric millwright_influx_backlog_points)" = "0" ] && break; sleep 1; done
curl -s "$VM/internal/force_flush" >/dev/null; sleep 2
q() { curl -s "$VM/api/v1/query" --data-urlencode "query=$1" --data-urlencode "time=$(date +%s)" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)'; }
stored=$(q 'sum(count_over_time({__name__=~"s[0-9]_value",asset=~"A[0-9]+"}[10y]))')
modbus=$(q 'sum(count_over_time(bearing_temp_c_value{asset="P-101"}[1d]))')
dropped=$(metric millwright_influx_dropped_points_total)
echo "soak: MQTT readings published $published, stored $stored; Modbus readings of the live device $modbus; outbox dropped $dropped"
echo "soak: node RSS at 30 s: $rss_start, at the end: $rss_end"
grep -c "device" "$work/node.log" >/dev/null || true
status=0
[ "$stored" = "$published" ] || { echo "soak: FAIL: $((published - stored)) MQTT readings lost" >&2; status=1; }
[ "$modbus" -gt 0 ] || { echo "soak: FAIL: no Modbus readings" >&2; status=1; }
grep -q "P-DEAD\|pump-dead" "$work/node.log" || { echo "soak: FAIL: the dead device was not reported" >&2; status=1; }
[ "$status" = 0 ] && echo "soak: PASS (logs in $work)"
exit $status
