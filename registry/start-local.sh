#!/usr/bin/env bash
# Runs Docker's distribution registry on a bare machine from Debian's docker-registry package, with
# registry/config.yml: `start` (the default) returns once it answers, `stop` ends it.
#   FAAS_REGISTRY_ADDR  listen address, default 127.0.0.1:5000
#   FAAS_REGISTRY_DIR   storage folder, default /var/lib/docker-registry
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
addr="${FAAS_REGISTRY_ADDR:-127.0.0.1:5000}"
dir="${FAAS_REGISTRY_DIR:-/var/lib/docker-registry}"
pidfile="$dir/registry.pid"
case "${1:-start}" in
  stop)
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
command -v docker-registry >/dev/null || { echo "docker-registry is missing: apt-get install -y docker-registry" >&2; exit 1; }
probe="http://${addr/0.0.0.0/127.0.0.1}/v2/"
if curl -fsS -o /dev/null "$probe" 2>/dev/null; then echo "registry already answers at $addr"; exit 0; fi
mkdir -p "$dir"
REGISTRY_HTTP_ADDR="$addr" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$dir" \
  nohup docker-registry serve "$here/config.yml" >"$dir/registry.log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 1 50); do
  curl -fsS -o /dev/null "$probe" 2>/dev/null && { echo "registry at $addr, storage in $dir"; exit 0; }
  sleep 0.2
done
tail -5 "$dir/registry.log" >&2; echo "the registry did not start" >&2; exit 1
