import os from 'node:os';
import path from 'node:path';
import { ConfigError, envEndpoint, envInt, envString } from '../protocol/config';
import type { PreloadPolicy } from '../protocol/types';

export interface WorkerConfig {
  /** This node's name. FAAS_NODE_ID, default the host name. */
  nodeId: string;
  /** The api's worker channel. FAAS_WORKER_ENDPOINT, default tcp://127.0.0.1:5556. */
  apiEndpoint: string;
  /** The api's HTTP address, for package downloads. FAAS_API_URL, default http://127.0.0.1:3000. */
  apiUrl: string;
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
  /** FAAS_HEARTBEAT_MS, default 1000. */
  heartbeatMs: number;
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const nodeId = envString(env, 'FAAS_NODE_ID', os.hostname());
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(nodeId)) throw new ConfigError(`FAAS_NODE_ID must be a simple name, got "${nodeId}"`);
  const platformLabel = envString(env, 'FAAS_PLATFORM_LABEL', 'faas');
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(platformLabel)) {
    throw new ConfigError(`FAAS_PLATFORM_LABEL must match ^[a-z0-9][a-z0-9_-]{0,62}$, got "${platformLabel}"`);
  }
  const apiUrl = envString(env, 'FAAS_API_URL', 'http://127.0.0.1:3000').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+$/.test(apiUrl)) throw new ConfigError(`FAAS_API_URL must be an http(s) URL such as http://127.0.0.1:3000, got "${apiUrl}"`);
  return {
    nodeId,
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
    heartbeatMs: envInt(env, 'FAAS_HEARTBEAT_MS', 1000, { min: 50, max: 60_000 }),
  };
}

function preloadPolicy(raw: string | undefined): PreloadPolicy {
  const value = raw === undefined || raw === '' ? 'function' : raw;
  if (value !== 'none' && value !== 'runtime' && value !== 'function') {
    throw new ConfigError(`FAAS_PRELOAD must be one of none, runtime, function, got "${value}"`);
  }
  return value;
}
