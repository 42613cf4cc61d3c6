#!/usr/bin/env bash
# Makes a local Debian base image with python3, pip and node-free tooling, for machines that
# cannot pull the official images. The Debian mirror is read from apt's own configuration.
set -euo pipefail
name="${1:-faas-base/debian:bookworm}"
if docker image inspect "$name" >/dev/null 2>&1; then
  echo "base image $name already present"; exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/ {print $2; exit}' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "no Debian mirror found in apt's sources" >&2; exit 1; }
dir=$(mktemp -d /tmp/faas-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "making $name with debootstrap (about a minute)"
debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates bookworm "$dir" "$mirror" >/tmp/faas-debootstrap.log 2>&1 \
  || { tail -20 /tmp/faas-debootstrap.log >&2; exit 1; }
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
tar -C "$dir" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["/bin/bash"]' - "$name" >/dev/null
echo "base image $name ready"
