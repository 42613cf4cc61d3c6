import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, envEndpoint, envInt, envNumber, envString } from '../protocol/config';
import { loadCurveConfig } from '../protocol/curve';
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
  /** Label value on everything this platform creates in Docker. FAAS_PLATFORM_LABEL, default "faas". */
  platformLabel: string;
  /** Default call timeout. FAAS_CALL_TIMEOUT_MS, default 60000. */
  callTimeoutMs: number;
  /** Memory limit of a function container. FAAS_MEMORY_MB, default 256. */
  memoryMb: number;
  /** Network of the container that installs dependencies. FAAS_DEPS_NETWORK, default "bridge". */
  depsNetwork: string;
  /** Time bound of the dependencies step. FAAS_DEPS_TIMEOUT_MS, default 300000. */
  depsTimeoutMs: number;
  /** Time bound of pulling a missing runtime image. FAAS_PULL_TIMEOUT_MS, default 600000. */
  pullTimeoutMs: number;
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

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const nodeId = envString(env, 'FAAS_NODE_ID', defaultNodeId());
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(nodeId)) throw new ConfigError(`FAAS_NODE_ID must be a simple name, got "${nodeId}"`);
  const platformLabel = envString(env, 'FAAS_PLATFORM_LABEL', 'faas');
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(platformLabel)) {
    throw new ConfigError(`FAAS_PLATFORM_LABEL must match ^[a-z0-9][a-z0-9_-]{0,62}$, got "${platformLabel}"`);
  }
  const apiUrl = envString(env, 'FAAS_API_URL', 'http://127.0.0.1:3000').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+$/.test(apiUrl)) throw new ConfigError(`FAAS_API_URL must be an http(s) URL such as http://127.0.0.1:3000, got "${apiUrl}"`);
  loadCurveConfig(env, 'client');
  const apiUser = env.FAAS_API_USER ?? '';
  if (apiUser.includes(':')) throw new ConfigError('FAAS_API_USER must not contain ":"');
  if (Boolean(apiUser) !== Boolean(env.FAAS_API_PASSWORD)) throw new ConfigError('FAAS_API_USER and FAAS_API_PASSWORD go together');
  return {
    nodeId,
    ...(apiUser ? { apiCredentials: `${apiUser}:${env.FAAS_API_PASSWORD}` } : {}),
    apiEndpoint: envEndpoint(env, 'FAAS_WORKER_ENDPOINT', 'tcp://127.0.0.1:5556'),
    apiUrl,
    dbEndpoint: envEndpoint(env, 'FAAS_DB_ENDPOINT', 'tcp://127.0.0.1:5555'),
    capacity: envInt(env, 'FAAS_WORKER_CAPACITY', 8, { min: 1, max: 256 }),
    minMiniworkers: envInt(env, 'FAAS_MIN_MINIWORKERS', 1, { min: 0, max: 256 }),
    preload: preloadPolicy(env.FAAS_PRELOAD),
    prewarm: envInt(env, 'FAAS_PREWARM', 1, { min: 0, max: 256 }),
    keepAliveMs: envInt(env, 'FAAS_KEEP_ALIVE_MS', 300_000, { min: 100, max: 86_400_000 }),
    idleExitMs: envInt(env, 'FAAS_IDLE_EXIT_MS', 60_000, { min: 100, max: 86_400_000 }),
    scaleUpAfterMs: envInt(env, 'FAAS_SCALE_UP_AFTER_MS', 50, { min: 0, max: 60_000 }),
    dataDir: path.resolve(envString(env, 'FAAS_WORKER_DATA_DIR', `./data/worker-${nodeId}`)),
    platformLabel,
    callTimeoutMs: envInt(env, 'FAAS_CALL_TIMEOUT_MS', 60_000, { min: 100, max: 3_600_000 }),
    memoryMb: envInt(env, 'FAAS_MEMORY_MB', 256, { min: 16, max: 65_536 }),
    depsNetwork: envString(env, 'FAAS_DEPS_NETWORK', 'bridge'),
    depsTimeoutMs: envInt(env, 'FAAS_DEPS_TIMEOUT_MS', 300_000, { min: 1000, max: 3_600_000 }),
    ...(env.FAAS_REGISTRY_USER ? { registryUser: env.FAAS_REGISTRY_USER, registryPassword: env.FAAS_REGISTRY_PASSWORD ?? '' } : {}),
    maxOutputBytes: envInt(env, 'FAAS_MAX_OUTPUT_BYTES', 8 * 1024 * 1024, { min: 1024, max: 10 * 1024 * 1024 }),
    drainGraceMs: envInt(env, 'FAAS_DRAIN_GRACE_MS', 5000, { min: 0, max: 3_600_000 }),
    reapIntervalMs: envInt(env, 'FAAS_REAP_INTERVAL_MS', 15_000, { min: 100, max: 3_600_000 }),
    pullTimeoutMs: envInt(env, 'FAAS_PULL_TIMEOUT_MS', 600_000, { min: 1000, max: 3_600_000 }),
    heartbeatMs: envInt(env, 'FAAS_HEARTBEAT_MS', 1000, { min: 50, max: 60_000 }),
    cpus: envNumber(env, 'FAAS_CPUS', 1, { min: 0.01, max: 1024 }),
    pidsLimit: envInt(env, 'FAAS_PIDS_LIMIT', 128, { min: 8, max: 65_536 }),
    nofile: envInt(env, 'FAAS_NOFILE', 1024, { min: 16, max: 1_048_576 }),
    tmpfsMb: envInt(env, 'FAAS_TMPFS_MB', 64, { min: 1, max: 65_536 }),
    functionUser: functionUser(env.FAAS_FUNCTION_USER),
    maxResultBytes: envInt(env, 'FAAS_MAX_RESULT_BYTES', 1024 * 1024, { min: 1024, max: 6 * 1024 * 1024 }),
    maxLogBytes: envInt(env, 'FAAS_MAX_LOG_BYTES', 1024 * 1024, { min: 1024, max: 4 * 1024 * 1024 }),
  };
}

function functionUser(raw: string | undefined): string {
  const value = raw === undefined || raw === '' ? '65534:65534' : raw;
  const match = /^(\d{1,10}):(\d{1,10})$/.exec(value);
  if (!match) throw new ConfigError(`FAAS_FUNCTION_USER must be uid:gid in numbers, such as 65534:65534, got "${value}"`);
  if (Number(match[1]) === 0 || Number(match[2]) === 0) throw new ConfigError('FAAS_FUNCTION_USER must not be root (uid or gid 0)');
  return value;
}

function preloadPolicy(raw: string | undefined): PreloadPolicy {
  const value = raw === undefined || raw === '' ? 'function' : raw;
  if (value !== 'none' && value !== 'runtime' && value !== 'function') {
    throw new ConfigError(`FAAS_PRELOAD must be one of none, runtime, function, got "${value}"`);
  }
  return value;
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
