import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, envBool, envEndpoint, envInt, envOneOf, envString, isLoopback } from '../protocol/config';
import { checkExposure, loadCurveConfig } from '../protocol/curve';
import { parseUsers } from './auth';
import type { LimitMaxima } from '../protocol/limits';

export interface ApiConfig {
  /** HTTP address. FAAS_API_HOST (default 127.0.0.1) and FAAS_API_PORT (default 3000). */
  host: string;
  port: number;
  /** db-service. FAAS_DB_ENDPOINT, default tcp://127.0.0.1:5555. */
  dbEndpoint: string;
  /** Where workers connect. FAAS_WORKER_ENDPOINT, default tcp://127.0.0.1:5556. */
  workerEndpoint: string;
  /** Packages and staging. FAAS_API_DATA_DIR, default ./data/api. */
  dataDir: string;
  /** How long ?wait=true holds a request before answering 202. FAAS_WAIT_TIMEOUT_MS, default 30000. */
  waitTimeoutMs: number;
  /** FAAS_HEARTBEAT_MS (default 1000); a worker silent for 3 beats is expired. */
  heartbeatMs: number;
  /** Largest upload. FAAS_MAX_UPLOAD_BYTES, default 50 MiB. */
  maxUploadBytes: number;
  /** Largest JSON body. FAAS_MAX_BODY_BYTES, default 1 MiB. */
  maxBodyBytes: number;
  /** Params nested deeper than this are refused with 400. FAAS_MAX_PARAMS_DEPTH, default 100. */
  maxParamsDepth: number;
  /** Calls waiting for a worker, in all (FAAS_MAX_QUEUE, 100000) and per function (FAAS_MAX_QUEUE_PER_FUNCTION, 20000); past them, 429. */
  maxQueue: number;
  maxQueuePerFunction: number;
  /** Invocation policy: warm (default), home, least-loaded. FAAS_SCHEDULER. */
  scheduler: 'warm' | 'home' | 'least-loaded';
  /**
   * What a function may ask for at registration: FAAS_MAX_TIMEOUT_MS (default 300000),
   * FAAS_MAX_MEMORY_MB (2048), FAAS_MAX_CPUS (4), FAAS_MAX_CONCURRENCY (1000), and
   * FAAS_ALLOW_FUNCTION_NETWORK (false: every function runs without a network).
   */
  limits: LimitMaxima;
  /**
   * Users allowed in (HTTP Basic): FAAS_AUTH_USERS (`name:scrypt$…` entries, comma separated) and
   * the file FAAS_AUTH_USERS_FILE (one per line). With none, the api serves loopback only unless
   * FAAS_ALLOW_UNAUTHENTICATED=true.
   */
  users: ReturnType<typeof parseUsers>;
  allowUnauthenticated: boolean;
  /** Requests per minute per user (or per address without users); 0 turns it off. FAAS_RATE_LIMIT_PER_MINUTE, default 0. */
  rateLimitPerMinute: number;
}

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const host = envString(env, 'FAAS_API_HOST', '127.0.0.1');
  const users = parseUsers(env.FAAS_AUTH_USERS ?? '', 'FAAS_AUTH_USERS');
  if (env.FAAS_AUTH_USERS_FILE) {
    let text: string;
    try {
      text = readFileSync(env.FAAS_AUTH_USERS_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError(`FAAS_AUTH_USERS_FILE cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    for (const [name, hash] of parseUsers(text, 'FAAS_AUTH_USERS_FILE')) users.set(name, hash);
  }
  const allowUnauthenticated = envBool(env, 'FAAS_ALLOW_UNAUTHENTICATED', false);
  if (users.size === 0 && !isLoopback(host) && !allowUnauthenticated) {
    throw new ConfigError(
      `FAAS_API_HOST=${host} would serve everyone who reaches it without a password: configure users (FAAS_AUTH_USERS or FAAS_AUTH_USERS_FILE), bind a loopback address, or set FAAS_ALLOW_UNAUTHENTICATED=true`,
    );
  }
  const workerEndpoint = envEndpoint(env, 'FAAS_WORKER_ENDPOINT', 'tcp://127.0.0.1:5556');
  checkExposure('FAAS_WORKER_ENDPOINT', workerEndpoint, loadCurveConfig(env, 'server'), env);
  return {
    host,
    port: envInt(env, 'FAAS_API_PORT', 3000, { min: 0, max: 65535 }),
    dbEndpoint: envEndpoint(env, 'FAAS_DB_ENDPOINT', 'tcp://127.0.0.1:5555'),
    workerEndpoint,
    dataDir: path.resolve(envString(env, 'FAAS_API_DATA_DIR', './data/api')),
    waitTimeoutMs: envInt(env, 'FAAS_WAIT_TIMEOUT_MS', 30_000, { min: 1, max: 15 * 60_000 }),
    heartbeatMs: envInt(env, 'FAAS_HEARTBEAT_MS', 1000, { min: 50, max: 60_000 }),
    maxUploadBytes: envInt(env, 'FAAS_MAX_UPLOAD_BYTES', 50 * 1024 * 1024, { min: 1024, max: 1024 * 1024 * 1024 }),
    maxBodyBytes: envInt(env, 'FAAS_MAX_BODY_BYTES', 1024 * 1024, { min: 1024, max: 64 * 1024 * 1024 }),
    maxParamsDepth: envInt(env, 'FAAS_MAX_PARAMS_DEPTH', 100, { min: 1, max: 10_000 }),
    maxQueue: envInt(env, 'FAAS_MAX_QUEUE', 100_000, { min: 1, max: 10_000_000 }),
    maxQueuePerFunction: envInt(env, 'FAAS_MAX_QUEUE_PER_FUNCTION', 20_000, { min: 1, max: 10_000_000 }),
    scheduler: envOneOf(env, 'FAAS_SCHEDULER', 'warm', ['warm', 'home', 'least-loaded'] as const),
    limits: {
      maxTimeoutMs: envInt(env, 'FAAS_MAX_TIMEOUT_MS', 300_000, { min: 100, max: 3_600_000 }),
      maxMemoryMb: envInt(env, 'FAAS_MAX_MEMORY_MB', 2048, { min: 16, max: 1_048_576 }),
      maxCpus: envInt(env, 'FAAS_MAX_CPUS', 4, { min: 1, max: 1024 }),
      maxConcurrency: envInt(env, 'FAAS_MAX_CONCURRENCY', 1000, { min: 1, max: 1_000_000 }),
      allowNetwork: envBool(env, 'FAAS_ALLOW_FUNCTION_NETWORK', false),
    },
    users,
    allowUnauthenticated,
    rateLimitPerMinute: envInt(env, 'FAAS_RATE_LIMIT_PER_MINUTE', 0, { min: 0, max: 10_000_000 }),
  };
}
