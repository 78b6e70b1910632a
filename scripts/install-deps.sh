#!/usr/bin/env bash
# Installs, when missing, what the test suite runs against: Mosquitto (MQTT broker),
# VictoriaMetrics (speaks the InfluxDB v2 write API), socat (serial-line tests), systemd-analyze
# (the service unit's check), and pip (to fetch the model package), then the Python package
# `mqtt-spb-wrapper` (the independent Sparkplug B publisher of tests/tests/mqtt_dialects.rs).
# Debian/Ubuntu packages; needs root or sudo for them.
set -euo pipefail
SPB_WRAPPER="mqtt-spb-wrapper==2.1.2"
install_spb_wrapper() {
  if python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('mqtt-spb-wrapper') != '2.1.2')" 2>/dev/null; then
    return 0
  fi
  echo "installing: $SPB_WRAPPER (pip)"
  python3 -m pip install --quiet --disable-pip-version-check "$SPB_WRAPPER" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --user "$SPB_WRAPPER" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$SPB_WRAPPER"
}
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have mosquitto || need+=(mosquitto)
have mosquitto_pub || need+=(mosquitto-clients)
have victoria-metrics || need+=(victoria-metrics)
have socat || need+=(socat)
# systemd-analyze verifies deploy/systemd/millwright.service (package `systemd`: installing it
# in a container only adds the tools; nothing starts).
have systemd-analyze || need+=(systemd)
have python3 || need+=(python3)
if ! command -v pip3 >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
  need+=(python3-pip)
fi
if [ ${#need[@]} -eq 0 ]; then
  install_spb_wrapper
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root or sudo to install: ${need[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's packages may start system services; the tests run their own instances.
for svc in mosquitto victoria-metrics; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done
install_spb_wrapper
