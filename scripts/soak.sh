#!/usr/bin/env bash
# `make soak`: the node under mixed MQTT and Modbus load for SOAK_SECONDS (default 600) through
# the disk outbox, with a broker restart, a database outage and a dead Modbus device injected.
#
# Load: every SOAK_PAUSE_S seconds a round of QoS 1 messages (alternately SOAK_ROUND_READINGS
# readings at 100 per JSON message and a tenth of that at one reading per message) through a
# private Mosquitto (persistence on, the node on a persistent session), and two simulated Modbus
# machines polled at 4 Hz. Injected, in this order:
#   at 1/3  the broker is stopped right after a 5× round (the node still draining it) and
#           started again 3 s later;
#   at 1/2  VictoriaMetrics is stopped for SOAK_OUTAGE_S seconds (default 60);
#   at 2/3  the second Modbus machine's simulator is killed (the device dies for good).
# Checks at the end (exit 1 if any fails):
#   - every MQTT reading the broker acknowledged is in VictoriaMetrics with its value, compared
#     reading by reading (asset, signal, time, value) with what the publisher sent;
#   - per Modbus device, the good readings in the database equal the good readings the node's
#     polls produced (millwright_modbus_readings_good_total), and the live device's series has
#     no gap longer than SOAK_MAX_GAP_S (a lost stretch would show as one);
#   - the dying device is reported offline (/metrics and the log);
#   - nothing dropped by the outbox, nothing rejected;
#   - the node's RSS at SOAK_RSS_START_S (60; the local store is full by then, see [store]) and
#     at the end of the load is printed and flat: the end at most SOAK_RSS_GROWTH_MB above it.
# Not part of `make test`. Needs mosquitto, victoria-metrics (scripts/install-deps.sh), curl,
# python3 and release builds of `millwright` (feature bench) and `millwright-sim`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SOAK_SECONDS:-600}
ROUND=${SOAK_ROUND_READINGS:-20000}   # a multiple of 2000 (100 per message, 20 assets)
PAUSE=${SOAK_PAUSE_S:-5}
OUTAGE=${SOAK_OUTAGE_S:-60}
MAX_GAP=${SOAK_MAX_GAP_S:-5}
RSS_AT=${SOAK_RSS_START_S:-60}
RSS_GROWTH=${SOAK_RSS_GROWTH_MB:-16}
BIN=./target/release/millwright
SIM=./target/release/millwright-sim
for b in mosquitto victoria-metrics curl python3; do command -v "$b" >/dev/null || { echo "soak: $b not installed (make deps)" >&2; exit 1; }; done
[ -x "$BIN" ] && [ -x "$SIM" ] || { echo "soak: build first (make soak does)" >&2; exit 1; }
[ $((ROUND % 2000)) = 0 ] || { echo "soak: SOAK_ROUND_READINGS must be a multiple of 2000" >&2; exit 1; }

work=$(mktemp -d /tmp/millwright-soak.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "soak: nothing listens on $1" >&2; exit 1; }
MQ=$(free_port); VMP=$(free_port); MB1=$(free_port); MB2=$(free_port); MET=$(free_port)
VM="http://127.0.0.1:$VMP"
say() { echo "soak: $(( $(date +%s) - ${t0:-$(date +%s)} )) s: $*"; }

# Run as root, mosquitto drops to its own user: its persistence folder must be writable to it
# (or the restart would lose the node's session and the messages queued for it).
chmod 755 "$work"; mkdir -m 777 "$work/mq"
cat > "$work/mosquitto.conf" <<CONF
listener $MQ 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/mq/
max_queued_messages 0
CONF
start_mosquitto() { mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 & MQPID=$!; pids+=("$MQPID"); wait_port "$MQ"; }
start_vm() { victoria-metrics -httpListenAddr=127.0.0.1:$VMP -storageDataPath="$work/vm" -retentionPeriod=100y -search.latencyOffset=0s >>"$work/vm.log" 2>&1 & VMPID=$!; pids+=("$VMPID"); wait_port "$VMP"; }
start_mosquitto; start_vm
"$SIM" --machine "pump:P-101@127.0.0.1:$MB1" --speed 1 >"$work/sim1.log" 2>&1 & SIM1=$!; pids+=("$SIM1"); wait_port "$MB1"
"$SIM" --machine "motor:M-201@127.0.0.1:$MB2" --speed 1 >"$work/sim2.log" 2>&1 & SIM2=$!; pids+=("$SIM2"); wait_port "$MB2"

device() { # name asset port
cat <<CONF
[[modbus.devices]]
name = "$1"
asset = "$2"
transport = "tcp"
host = "127.0.0.1"
port = $3
unit_id = 1
poll_interval_ms = 250
timeout_ms = 200
[[modbus.devices.fields]]
signal = "bearing_temp_c"
function = "input"
address = 14
type = "i16"
scale = 0.01
unit = "°C"
CONF
}
{
cat <<CONF
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
# The local store is a bounded cache of recent history that fills up to 1,000 points per
# sensor (200 MQTT sensors: full within the first minute), so RSS at the start and at the end
# compare a full store with a full store. (With the default 10,000 it would keep growing for
# the whole run, about 30 bytes a reading, by design.)
[store]
max_points_per_sensor = 1000
[node]
metrics_listen = "127.0.0.1:$MET"
metrics_interval_s = 0
status_interval_s = 0
CONF
device pump-live P-101 "$MB1"
device motor-dying M-201 "$MB2"
} > "$work/millwright.toml"
"$BIN" check-config "$work/millwright.toml" >/dev/null
(cd "$work" && exec "$OLDPWD/$BIN" run --config millwright.toml 2>node.log) & NODE=$!; pids+=("$NODE")
wait_port "$MET"
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$NODE/status"; }
metrics() { curl -s "http://127.0.0.1:$MET/metrics"; }
metric() { metrics | awk -v n="$1" '$1==n {print $2}'; }
# Sum of a family over its label sets.
metric_sum() { metrics | awk -v n="$1" 'index($1, n"{")==1 || $1==n {s+=$2} END {printf "%d", s}'; }
for _ in $(seq 1 100); do [ "$(metric millwright_mqtt_connected)" = "1" ] && break; sleep 0.2; done
[ "$(metric millwright_mqtt_connected)" = "1" ] || { echo "soak: the node did not connect; log:" >&2; tail -20 "$work/node.log" >&2; exit 1; }
sleep 1

# What was published: one line per round (first reading number, readings, readings per message).
: > "$work/rounds"
published=0; round=0; rss_start=""; rss_max=0
broker_restarted=0; db_down_at=0; db_up=1; killed=0
t0=$(date +%s)
publish() { # readings, per message
  local mode=batch; [ "$2" = 1 ] && mode=single
  "$BIN" bench ingest-publisher --broker "127.0.0.1:$MQ" --mode "$mode" --readings "$1" --batch "$2" --first "$published" 2>>"$work/publisher.log" \
    || { say "FAIL: the publisher failed (round $round)" >&2; exit 1; }
  echo "$published $1 $2" >> "$work/rounds"
  published=$((published + $1)); round=$((round + 1))
}
while :; do
  now=$(( $(date +%s) - t0 )); [ "$now" -ge "$SECS" ] && break
  r=$(rss); rss_max=$(python3 -c "print(max($rss_max, $r))"); echo "$now $r" >> "$work/rss.log"
  [ -z "$rss_start" ] && [ "$now" -ge "$RSS_AT" ] && { rss_start=$r; say "node RSS $r MB"; }
  if [ "$broker_restarted" = 0 ] && [ "$now" -ge $((SECS / 3)) ]; then
    publish $((ROUND * 5)) 100
    say "restarting the broker (node has taken $(metric_sum millwright_mqtt_readings_total) of $published readings)"
    kill "$MQPID"; wait "$MQPID" 2>/dev/null || true; sleep 3; start_mosquitto; broker_restarted=1
    say "broker up again"
  fi
  if [ "$db_up" = 1 ] && [ "$db_down_at" = 0 ] && [ "$now" -ge $((SECS / 2)) ]; then
    say "stopping VictoriaMetrics for $OUTAGE s"; kill "$VMPID"; wait "$VMPID" 2>/dev/null || true; db_down_at=$now; db_up=0
  fi
  if [ "$db_up" = 0 ] && [ "$now" -ge $((db_down_at + OUTAGE)) ]; then
    say "starting VictoriaMetrics again (outbox: $(metric millwright_influx_backlog_points) points)"; start_vm; db_up=1
  fi
  if [ "$killed" = 0 ] && [ "$now" -ge $((SECS * 2 / 3)) ]; then
    say "killing the simulator of M-201 (motor-dying)"; kill -9 "$SIM2"; wait "$SIM2" 2>/dev/null || true; killed=1
  fi
  if [ $((round % 2)) = 0 ]; then publish "$ROUND" 100; else publish $((ROUND / 10)) 1; fi
  sleep "$PAUSE"
done
[ "$db_up" = 1 ] || { say "starting VictoriaMetrics again"; start_vm; }
rss_end=$(rss); rss_max=$(python3 -c "print(max($rss_max, $rss_end))")
say "published $published MQTT readings in $round rounds (all acknowledged by the broker); waiting for the node to take them and the outbox to drain"
for _ in $(seq 1 300); do [ "$(metric_sum millwright_mqtt_readings_total)" -ge "$published" ] && [ "$(metric millwright_influx_backlog_points)" = "0" ] && break; sleep 1; done
# Stop the live device too, so that its count of good readings stays put, then let its last
# readings reach the database.
kill "$SIM1"; wait "$SIM1" 2>/dev/null || true
for _ in $(seq 1 100); do [ "$(metrics | awk '$1=="millwright_modbus_device_online{device=\"pump-live\"}" {print $2}')" = "0" ] && break; sleep 0.2; done
for _ in $(seq 1 100); do [ "$(metric millwright_influx_backlog_points)" = "0" ] && break; sleep 0.2; done
metrics > "$work/metrics.end"
say "drained; node RSS $(rss) MB"
curl -s "$VM/internal/force_flush" >/dev/null; sleep 2
# match[] URL-encoded (a "+" in a form is a space).
span=(-d start=1600000000 -d end=$(( $(date +%s) + 86400 )))
curl -s "$VM/api/v1/export" --data-urlencode 'match[]={__name__=~"s[0-9]_value",asset=~"A[0-9]+"}' "${span[@]}" > "$work/mqtt.jsonl"
curl -s "$VM/api/v1/export" --data-urlencode 'match[]={__name__="bearing_temp_c_value"}' "${span[@]}" > "$work/modbus.jsonl"

status=0
python3 - "$work" "$MAX_GAP" <<'PY' || status=1
import json, sys, re
work, max_gap = sys.argv[1], float(sys.argv[2])
fail = []
# Expected MQTT readings, exactly as `millwright bench ingest-publisher` builds them.
want = {}
for line in open(f"{work}/rounds"):
    first, n, per = map(int, line.split())
    ts0 = 1_700_000_000_000 + first
    for k in range(n):
        if per == 1:
            key = (f"A{k % 20}", f"s{k % 10}", ts0 + k); v = k % 1000 + 0.5
        else:
            key = (f"A{(k // per) % 20}", f"s{k % 10}", ts0 + k); v = k % 1000 + 0.25
        want[key] = v
got = {}
for line in open(f"{work}/mqtt.jsonl"):
    s = json.loads(line); m = s["metric"]
    sig = m["__name__"][: -len("_value")]
    for t, v in zip(s["timestamps"], s["values"]):
        got.setdefault((m["asset"], sig, t), []).append(v)
missing = [k for k in want if k not in got]
wrong = [k for k in want if k in got and any(v != want[k] for v in got[k])]
extra = [k for k in got if k not in want]
dups = sum(len(v) - 1 for v in got.values())
print(f"soak: MQTT readings published {len(want)}, in the database {sum(len(v) for v in got.values())}: "
      f"missing {len(missing)}, wrong value {len(wrong)}, unexpected {len(extra)}, duplicates {dups}")
if missing: fail.append(f"{len(missing)} MQTT readings lost, e.g. {sorted(missing)[:5]}")
if wrong: fail.append(f"{len(wrong)} MQTT readings with a wrong value, e.g. {wrong[:5]}")
if extra: fail.append(f"{len(extra)} unexpected MQTT readings, e.g. {extra[:5]}")
# Modbus: good readings per device in the database vs what the node's polls produced.
polled = {}
for line in open(f"{work}/metrics.end"):
    mm = re.match(r'millwright_modbus_readings_good_total\{device="([^"]+)"\} (\S+)', line)
    if mm: polled[mm.group(1)] = int(float(mm.group(2)))
assets = {"pump-live": "P-101", "motor-dying": "M-201"}
series = {}
for line in open(f"{work}/modbus.jsonl"):
    s = json.loads(line); m = s["metric"]
    if m.get("quality") == "good":
        series.setdefault(m["asset"], []).extend(s["timestamps"])
for dev, asset in assets.items():
    ts = sorted(series.get(asset, []))
    gap = max((b - a for a, b in zip(ts, ts[1:])), default=0) / 1000
    print(f"soak: Modbus {dev} ({asset}): polled good {polled.get(dev)}, in the database {len(ts)} ({len(set(ts))} distinct), longest gap {gap:.1f} s")
    if polled.get(dev) is None or len(set(ts)) != polled[dev]:
        fail.append(f"Modbus {dev}: {polled.get(dev)} good readings polled, {len(set(ts))} in the database")
    if dev == "pump-live" and gap > max_gap:
        fail.append(f"Modbus {dev}: a gap of {gap:.1f} s in its series")
    if not ts:
        fail.append(f"Modbus {dev}: no readings")
for f in fail: print(f"soak: FAIL: {f}", file=sys.stderr)
sys.exit(1 if fail else 0)
PY
online=$(awk '$1=="millwright_modbus_device_online{device=\"motor-dying\"}" {print $2}' "$work/metrics.end")
offline_ev=$(awk '$1=="millwright_modbus_offline_events_total{device=\"motor-dying\"}" {print $2}' "$work/metrics.end")
dropped=$(awk '$1=="millwright_influx_dropped_points_total" {print $2}' "$work/metrics.end")
rejected=$(awk '$1=="millwright_influx_rejected_points_total" {print $2}' "$work/metrics.end")
mq_rejected=$(awk 'index($1,"millwright_mqtt_rejected_total")==1 {s+=$2} END {print s+0}' "$work/metrics.end")
echo "soak: dying device: online=$online offline_events=$offline_ev; outbox dropped $dropped, database rejected $rejected, MQTT rejected $mq_rejected"
echo "soak: node RSS at $RSS_AT s: $rss_start MB, at the end of the load: $rss_end MB, highest sample: $rss_max MB"
echo "soak: node RSS (s MB) by tenths of the run: $(awk '{a[NR]=$0} END {for (i=1; i<=10; i++) printf "%s; ", a[int(NR*i/10)]}' "$work/rss.log")"
[ "$online" = "0" ] && [ "${offline_ev:-0}" != "0" ] || { echo "soak: FAIL: the dead device was not reported offline" >&2; status=1; }
grep -q 'device.*motor-dying.*offline\|modbus device offline.*motor-dying\|motor-dying.*modbus device offline' "$work/node.log" || { echo "soak: FAIL: no log line on the dead device" >&2; status=1; }
[ "$dropped" = "0" ] && [ "$rejected" = "0" ] && [ "$mq_rejected" = "0" ] || { echo "soak: FAIL: points dropped or rejected" >&2; status=1; }
python3 -c "import sys; sys.exit(0 if $rss_end <= $rss_start + $RSS_GROWTH else 1)" || { echo "soak: FAIL: RSS grew from $rss_start to $rss_end MB (more than $RSS_GROWTH MB)" >&2; status=1; }
if [ "$status" = 0 ]; then echo "soak: PASS ($SECS s; logs in $work)"; else echo "soak: FAILED (logs in $work)"; fi
exit $status
