#!/usr/bin/env bash
# Makes a local Node.js base image for machines that cannot pull node:20-slim: the local Debian base
# (scripts/make-base-image.sh) with this machine's own node binary and npm. Needs Node 20 or later here.
set -euo pipefail
name="${1:-faas-base/node:20}"
debian="${2:-faas-base/debian:bookworm}"
if docker image inspect "$name" >/dev/null 2>&1; then
  echo "base image $name already present"; exit 0
fi
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/make-base-image.sh" "$debian"
node_bin="$(readlink -f "$(command -v node)")"
major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || { echo "node $major here; the platform needs 20 or later" >&2; exit 1; }
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
ctx=$(mktemp -d /tmp/faas-node-base.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp "$node_bin" "$ctx/node"
cp -r "$npm_dir" "$ctx/npm"
cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $debian
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && node --version && npm --version
DOCKERFILE
echo "making $name from $debian with node $("$node_bin" --version)"
docker build -q -t "$name" "$ctx" >/dev/null
echo "base image $name ready"
