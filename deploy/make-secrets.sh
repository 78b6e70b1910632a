#!/bin/sh
# Writes the Docker secrets of deploy/docker-compose.yml: one random value per file in
# deploy/secrets/ (or the directory given), no trailing newline. Existing files are kept, so a
# re-run never changes a credential a running site already uses; delete a file to renew it
# (then recreate the services that read it). The directory is 0700 and git-ignored; the files
# are 0644 because compose bind-mounts them as they are and the node's container runs as a
# non-root user (uid 65532) that must read them.
set -eu
dir=${1:-"$(dirname "$0")/secrets"}
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
for name in mqtt_password influxdb_token influxdb_admin_password grafana_admin_password; do
  f="$dir/$name"
  if [ -s "$f" ]; then
    continue
  fi
  # 32 random bytes as URL-safe base64 (43 characters): no quotes, colons or whitespace, so the
  # value is safe in Mosquitto's password file and in HTTP headers.
  head -c 32 /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_' > "$f.tmp"
  chmod 0644 "$f.tmp"
  mv "$f.tmp" "$f"
  echo "wrote $f"
done
