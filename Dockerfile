# The platform's three processes from one source tree: `--target db-service`, `api` or `worker`.
# NODE_IMAGE is the official image by default; a machine that cannot pull it passes a local one
# (scripts/make-node-base-image.sh makes faas-base/node:20 from Debian and this machine's node).
ARG NODE_IMAGE=node:20-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Extra certificate authorities for npm, PEM text (behind a TLS-inspecting proxy); used in this
# stage only, never in the images that run.
ARG NPM_CA_CERTS=""
COPY package.json package-lock.json ./
RUN if [ -n "$NPM_CA_CERTS" ]; then printf '%s\n' "$NPM_CA_CERTS" > /tmp/extra-ca.pem; export NODE_EXTRA_CA_CERTS=/tmp/extra-ca.pem; fi \
 && npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.image.json ./
COPY protocol protocol
COPY db-service db-service
COPY api api
COPY worker worker
COPY miniworker miniworker
# The dashboard, bundled into dist/ui while the dev dependencies (esbuild, preact, uplot) are here.
COPY ui ui
COPY scripts/build-ui.mjs scripts/build-ui.mjs
# Production dependencies only, without the native prebuilds of other operating systems.
RUN npx tsc -p tsconfig.image.json \
 && npx tsc -p ui/tsconfig.json \
 && node scripts/build-ui.mjs \
 && npm prune --omit=dev --offline --no-audit --no-fund --loglevel=error \
 && rm -rf node_modules/zeromq/build/darwin node_modules/zeromq/build/win32 \
 && find node_modules -type d -path '*/prebuilds/*' -prune ! -name 'linux-*' -exec rm -rf {} +

FROM ${NODE_IMAGE} AS platform
ENV NODE_ENV=production
WORKDIR /app
RUN (getent passwd faas >/dev/null || useradd --system --uid 10001 --user-group --home-dir /data --no-create-home faas) \
 && mkdir -p /data && chown faas:faas /data
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
STOPSIGNAL SIGTERM

FROM platform AS db-service
USER faas
ENV FAAS_DB_DIR=/data/db FAAS_DB_ENDPOINT=tcp://0.0.0.0:5555
VOLUME /data
EXPOSE 5555
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["node", "dist/db-service/healthcheck.js"]
CMD ["node", "dist/db-service/main.js"]

FROM platform AS api
USER faas
ENV FAAS_API_HOST=0.0.0.0 FAAS_API_PORT=3000 FAAS_API_DATA_DIR=/data/api FAAS_WORKER_ENDPOINT=tcp://0.0.0.0:5556
VOLUME /data
EXPOSE 3000 5556
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["node", "dist/api/healthcheck.js"]
CMD ["node", "dist/api/main.js"]

# The worker drives the node's Docker engine through its socket, which root owns: it runs as root.
FROM platform AS worker
ENV FAAS_WORKER_DATA_DIR=/data/worker
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 CMD ["node", "dist/worker/healthcheck.js"]
CMD ["node", "dist/worker/main.js"]
