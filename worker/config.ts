import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { commonEnv, ConfigError, decimal, endpoint, int, oneOf, optionalText, parseEnv, text } from '../protocol/config';
import { registryPolicy, type RegistryPolicy } from '../protocol/registries';
import { loadCurveConfig } from '../protocol/curve';
import { backendEnv, backendSettings, type BackendSettings } from '../protocol/backend';
import type { PreloadPolicy } from '../protocol/types';

export interface WorkerConfig {
  /** This node's name. FAAS_NODE_ID, default the host name (in a container: its short container id). */
  nodeId: string;
  /** The api's worker channel. FAAS_WORKER_ENDPOINT, default tcp://127.0.0.1:5556. */
  apiEndpoint: string;
  /** The api's HTTP address, for package downloads. FAAS_API_URL, default http://127.0.0.1:3000. */
  apiUrl: string;
  /** Credentials for the api's HTTP routes when it has users: FAAS_API_USER and FAAS_API_PASSWORD. */
  apiCredentials?: string;
  /** db-service. FAAS_DB_ENDPOINT, default tcp://127.0.0.1:5555. */
  dbEndpoint: string;
  /** The cap on miniworkers, and so on containers, on this node. FAAS_WORKER_CAPACITY, default 8. */
  capacity: number;
  /** Miniworkers kept when idle. FAAS_MIN_MINIWORKERS, default 1. */
  minMiniworkers: number;
  /** Miniworkers as threads of the worker (the default) or as processes. FAAS_MINIWORKER_KIND. */
  miniworkerKind: 'thread' | 'process';
  /** Preload policy: none (a container per call), runtime, function. FAAS_PRELOAD, default function. */
  preload: PreloadPolicy;
  /** Warm containers started per function on registration under the function policy. FAAS_PREWARM, default 1. */
  prewarm: number;
  /** A warm container unused this long is removed. FAAS_KEEP_ALIVE_MS, default 300000. */
  keepAliveMs: number;
  /** A miniworker without a container exits after this long idle. FAAS_IDLE_EXIT_MS, default 60000. */
  idleExitMs: number;
  /** Miniworkers are added for calls that waited this long for one. FAAS_SCALE_UP_AFTER_MS, default 50. */
  scaleUpAfterMs: number;
  /** Package cache and the miniworker socket. FAAS_WORKER_DATA_DIR, default ./data/worker-<node>. */
  dataDir: string;
  /**
   * Where each warm container gets its channel folder (a unix socket, bind-mounted into that container
   * only), in a folder of this node; undefined: requests and frames go through `docker attach`.
   * FAAS_CHANNEL_DIR, default <data dir>/ch; it must be the same path for this process and for the
   * Docker engine. FAAS_CONTAINER_CHANNEL=attach turns the sockets off.
   */
  channelDir?: string;
  /**
   * Where containers' secrets are written, a folder of this node on a tmpfs, bind-mounted read-only at
   * /run/secrets into the one container they are for. FAAS_SECRETS_DIR, default /dev/shm/faas-secrets;
   * like the channel folder it must be the same path for this process and the Docker engine.
   */
  secretsDir: string;
  /** Label value on everything this platform creates in Docker. FAAS_PLATFORM_LABEL, default "faas". */
  platformLabel: string;
  /** Default call timeout. FAAS_CALL_TIMEOUT_MS, default 60000. */
  callTimeoutMs: number;
  /** Memory limit of a function container. FAAS_MEMORY_MB, default 256. */
  memoryMb: number;
  /** Network of the container that installs dependencies: none, bridge or a named network. FAAS_DEPS_NETWORK, default "none". */
  depsNetwork: string;
  /** Time bound of the dependencies step. FAAS_DEPS_TIMEOUT_MS, default 300000. */
  depsTimeoutMs: number;
  /** Where containers run: docker, or hollow for control-plane scale tests (FAAS_BACKEND and FAAS_HOLLOW_*; see protocol/backend.ts). */
  backend: BackendSettings;
  /** Memory (and memory+swap) of the dependencies step. FAAS_DEPS_MEMORY_MB, default 1024. */
  depsMemoryMb: number;
  /** Dependencies steps running at once on this node; more wait their turn. FAAS_MAX_CONCURRENT_BUILDS, default 2. */
  maxConcurrentBuilds: number;
  /** The most a dependencies step may add to a function image; past it the function is refused. FAAS_MAX_FUNCTION_IMAGE_MB, default 512. */
  maxFunctionImageMb: number;
  /** How often function images no version needs are looked for and removed. FAAS_IMAGE_GC_INTERVAL_MS, default 60000. */
  imageGcIntervalMs: number;
  /** Time bound of pulling a missing runtime image. FAAS_PULL_TIMEOUT_MS, default 600000. */
  pullTimeoutMs: number;
  /** Registries a missing runtime image may be pulled from beside Docker Hub and loopback ones: FAAS_ALLOWED_REGISTRIES. */
  registries: RegistryPolicy;
  /** On SIGTERM, how long running calls may go on before they are cut short. FAAS_DRAIN_GRACE_MS, default 5000. */
  drainGraceMs: number;
  /** How often call containers that no miniworker holds are looked for and removed. FAAS_REAP_INTERVAL_MS, default 15000. */
  reapIntervalMs: number;
  /** Outputs kept per call, as a tar. FAAS_MAX_OUTPUT_BYTES, default 8 MiB. */
  maxOutputBytes: number;
  /** Credentials for a registry that asks for them. FAAS_REGISTRY_USER, FAAS_REGISTRY_PASSWORD. */
  registryUser?: string;
  registryPassword?: string;
  /** FAAS_HEARTBEAT_MS, default 1000. */
  heartbeatMs: number;
  /** The longest pause between reconnect attempts to the api. FAAS_RECONNECT_MAX_MS, default 32000 (keep the api's FAAS_RECOVERY_GRACE_MS above it). */
  reconnectMaxMs: number;
  /** CPU quota of a function container, in CPUs. FAAS_CPUS, default 1. */
  cpus: number;
  /** Processes and threads a function container may have. FAAS_PIDS_LIMIT, default 128. */
  pidsLimit: number;
  /** Open files per process in a function container. FAAS_NOFILE, default 1024. */
  nofile: number;
  /** Size of the writable /tmp of a function container. FAAS_TMPFS_MB, default 64. */
  tmpfsMb: number;
  /** uid:gid functions run as; root is refused. FAAS_FUNCTION_USER, default 65534:65534 (nobody). */
  functionUser: string;
  /** Largest result of a call. FAAS_MAX_RESULT_BYTES, default 1 MiB. */
  maxResultBytes: number;
  /** Largest stdout and stderr kept per call, each; the rest is cut with a marker. FAAS_MAX_LOG_BYTES, default 1 MiB. */
  maxLogBytes: number;
}

/** The worker's environment: every variable it reads, with its default. */
export const workerEnv = commonEnv.merge(backendEnv).extend({
  FAAS_NODE_ID: text(() => defaultNodeId(), {
    pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
    hint: 'must be a simple name',
    doc: 'host name; in a container, its short container id',
  }),
  FAAS_PLATFORM_LABEL: text('faas', { pattern: /^[a-z0-9][a-z0-9_-]{0,62}$/ }),
  FAAS_WORKER_ENDPOINT: endpoint('tcp://127.0.0.1:5556'),
  FAAS_API_URL: text('http://127.0.0.1:3000', { pattern: /^https?:\/\/[^/]+\/*$/, hint: 'must be an http(s) URL such as http://127.0.0.1:3000' }),
  FAAS_API_USER: optionalText({ pattern: /^[^:]*$/, hint: 'must not contain ":"' }),
  FAAS_API_PASSWORD: optionalText(),
  FAAS_DB_ENDPOINT: endpoint('tcp://127.0.0.1:5555'),
  FAAS_WORKER_CAPACITY: int(8, { min: 1, max: 1024 }),
  FAAS_MIN_MINIWORKERS: int(1, { min: 0, max: 256 }),
  FAAS_MINIWORKER_KIND: oneOf('thread', ['thread', 'process']),
  FAAS_PRELOAD: oneOf('function', ['none', 'runtime', 'function']),
  FAAS_PREWARM: int(1, { min: 0, max: 256 }),
  FAAS_KEEP_ALIVE_MS: int(300_000, { min: 100, max: 86_400_000 }),
  FAAS_IDLE_EXIT_MS: int(60_000, { min: 100, max: 86_400_000 }),
  FAAS_SCALE_UP_AFTER_MS: int(50, { min: 0, max: 60_000 }),
  FAAS_WORKER_DATA_DIR: optionalText({ doc: './data/worker-<node>' }),
  FAAS_SECRETS_DIR: text('/dev/shm/faas-secrets'),
  FAAS_CHANNEL_DIR: optionalText({ pattern: /^\/[A-Za-z0-9._/-]{0,60}$/, hint: 'must be an absolute path of at most 60 characters (letters, digits, . _ - /)', doc: '<data dir>/ch' }),
  FAAS_CONTAINER_CHANNEL: oneOf('socket', ['socket', 'attach']),
  FAAS_CALL_TIMEOUT_MS: int(60_000, { min: 100, max: 3_600_000 }),
  FAAS_MEMORY_MB: int(256, { min: 16, max: 65_536 }),
  FAAS_DEPS_NETWORK: text('none', { pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, hint: 'must be none, bridge or the name of a Docker network' }),
  FAAS_DEPS_TIMEOUT_MS: int(300_000, { min: 1000, max: 3_600_000 }),
  FAAS_DEPS_MEMORY_MB: int(1024, { min: 64, max: 65_536 }),
  FAAS_MAX_CONCURRENT_BUILDS: int(2, { min: 1, max: 64 }),
  FAAS_MAX_FUNCTION_IMAGE_MB: int(512, { min: 1, max: 65_536 }),
  FAAS_IMAGE_GC_INTERVAL_MS: int(60_000, { min: 100, max: 86_400_000 }),
  FAAS_REGISTRY_USER: optionalText(),
  FAAS_REGISTRY_PASSWORD: optionalText(),
  FAAS_MAX_OUTPUT_BYTES: int(8 * 1024 * 1024, { min: 1024, max: 10 * 1024 * 1024 }),
  FAAS_DRAIN_GRACE_MS: int(5000, { min: 0, max: 3_600_000 }),
  FAAS_REAP_INTERVAL_MS: int(15_000, { min: 100, max: 3_600_000 }),
  FAAS_PULL_TIMEOUT_MS: int(600_000, { min: 1000, max: 3_600_000 }),
  FAAS_ALLOWED_REGISTRIES: optionalText({ pattern: /^[A-Za-z0-9.*:[\]_, -]*$/, hint: 'must be registry hosts (host or host:port) separated by commas, or *' }),
  FAAS_HEARTBEAT_MS: int(1000, { min: 50, max: 60_000 }),
  FAAS_RECONNECT_MAX_MS: int(32_000, { min: 100, max: 600_000 }),
  FAAS_CPUS: decimal(1, { min: 0.01, max: 1024 }),
  FAAS_PIDS_LIMIT: int(128, { min: 8, max: 65_536 }),
  FAAS_NOFILE: int(1024, { min: 16, max: 1_048_576 }),
  FAAS_TMPFS_MB: int(64, { min: 1, max: 65_536 }),
  FAAS_FUNCTION_USER: text('65534:65534', { pattern: /^\d{1,10}:\d{1,10}$/, hint: 'must be uid:gid in numbers, such as 65534:65534' }),
  FAAS_MAX_RESULT_BYTES: int(1024 * 1024, { min: 1024, max: 6 * 1024 * 1024 }),
  FAAS_MAX_LOG_BYTES: int(1024 * 1024, { min: 1024, max: 4 * 1024 * 1024 }),
});

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const e = parseEnv(workerEnv, env);
  loadCurveConfig(env, 'client');
  const apiUser = e.FAAS_API_USER ?? '';
  if (Boolean(apiUser) !== Boolean(e.FAAS_API_PASSWORD)) throw new ConfigError('FAAS_API_USER and FAAS_API_PASSWORD go together');
  if (e.FAAS_FUNCTION_USER.split(':').some((id) => Number(id) === 0)) throw new ConfigError('FAAS_FUNCTION_USER must not be root (uid or gid 0)');
  // The host's network would give the step the host's loopback, where db-service and the api listen.
  if (e.FAAS_DEPS_NETWORK === 'host') throw new ConfigError('FAAS_DEPS_NETWORK must not be host: use bridge or a named network');
  return {
    nodeId: e.FAAS_NODE_ID,
    ...(apiUser ? { apiCredentials: `${apiUser}:${e.FAAS_API_PASSWORD}` } : {}),
    apiEndpoint: e.FAAS_WORKER_ENDPOINT,
    apiUrl: e.FAAS_API_URL.replace(/\/+$/, ''),
    dbEndpoint: e.FAAS_DB_ENDPOINT,
    capacity: e.FAAS_WORKER_CAPACITY,
    minMiniworkers: e.FAAS_MIN_MINIWORKERS,
    miniworkerKind: e.FAAS_MINIWORKER_KIND,
    preload: e.FAAS_PRELOAD,
    prewarm: e.FAAS_PREWARM,
    keepAliveMs: e.FAAS_KEEP_ALIVE_MS,
    idleExitMs: e.FAAS_IDLE_EXIT_MS,
    scaleUpAfterMs: e.FAAS_SCALE_UP_AFTER_MS,
    dataDir: path.resolve(e.FAAS_WORKER_DATA_DIR ?? `./data/worker-${e.FAAS_NODE_ID}`),
    ...(e.FAAS_CONTAINER_CHANNEL === 'socket'
      ? { channelDir: path.join(e.FAAS_CHANNEL_DIR ?? path.join(path.resolve(e.FAAS_WORKER_DATA_DIR ?? `./data/worker-${e.FAAS_NODE_ID}`), 'ch'), e.FAAS_NODE_ID) }
      : {}),
    secretsDir: path.join(path.resolve(e.FAAS_SECRETS_DIR), e.FAAS_NODE_ID),
    platformLabel: e.FAAS_PLATFORM_LABEL,
    callTimeoutMs: e.FAAS_CALL_TIMEOUT_MS,
    memoryMb: e.FAAS_MEMORY_MB,
    depsNetwork: e.FAAS_DEPS_NETWORK,
    depsTimeoutMs: e.FAAS_DEPS_TIMEOUT_MS,
    backend: backendSettings(e),
    depsMemoryMb: e.FAAS_DEPS_MEMORY_MB,
    maxConcurrentBuilds: e.FAAS_MAX_CONCURRENT_BUILDS,
    maxFunctionImageMb: e.FAAS_MAX_FUNCTION_IMAGE_MB,
    imageGcIntervalMs: e.FAAS_IMAGE_GC_INTERVAL_MS,
    ...(e.FAAS_REGISTRY_USER ? { registryUser: e.FAAS_REGISTRY_USER, registryPassword: e.FAAS_REGISTRY_PASSWORD ?? '' } : {}),
    maxOutputBytes: e.FAAS_MAX_OUTPUT_BYTES,
    drainGraceMs: e.FAAS_DRAIN_GRACE_MS,
    reapIntervalMs: e.FAAS_REAP_INTERVAL_MS,
    pullTimeoutMs: e.FAAS_PULL_TIMEOUT_MS,
    registries: registryPolicy(e.FAAS_ALLOWED_REGISTRIES ?? ''),
    heartbeatMs: e.FAAS_HEARTBEAT_MS,
    reconnectMaxMs: e.FAAS_RECONNECT_MAX_MS,
    cpus: e.FAAS_CPUS,
    pidsLimit: e.FAAS_PIDS_LIMIT,
    nofile: e.FAAS_NOFILE,
    tmpfsMb: e.FAAS_TMPFS_MB,
    functionUser: e.FAAS_FUNCTION_USER,
    maxResultBytes: e.FAAS_MAX_RESULT_BYTES,
    maxLogBytes: e.FAAS_MAX_LOG_BYTES,
  };
}

/**
 * Replicas of a worker container share the host's name under host networking, so inside a container
 * the node is named by its container id, which survives restarts of that container (its orphans are
 * then still found as its own).
 */
function defaultNodeId(): string {
  try {
    const match = /\/docker\/containers\/([0-9a-f]{64})\//.exec(readFileSync('/proc/self/mountinfo', 'utf8'));
    if (match) return match[1]!.slice(0, 12);
  } catch {
    /* not Linux, or no /proc */
  }
  return os.hostname();
}

/** Touched on each heartbeat while the api is heard; its age is the worker's health. */
export function aliveFile(dataDir: string): string {
  return path.join(dataDir, 'alive');
}
