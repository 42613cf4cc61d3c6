import { readFileSync } from 'node:fs';
import path from 'node:path';
import { commonEnv, ConfigError, endpoint, flag, int, oneOf, onlyLocal, optionalText, parseEnv, text } from '../protocol/config';
import { checkExposure, loadCurveConfig } from '../protocol/curve';
import { registryPolicy, type RegistryPolicy } from '../protocol/registries';
import { callbackPolicy, type CallbackPolicy } from './callbacks';
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
  /** FAAS_HEARTBEAT_MS (default 1000); a worker silent for `livenessBeats` beats is expired. */
  heartbeatMs: number;
  /** Beats a worker may miss before it is expired and its calls end node_lost. FAAS_WORKER_LIVENESS, default 3. */
  livenessBeats: number;
  /** After a restart, how long the api waits for the nodes registered before it. FAAS_RECOVERY_GRACE_MS, default 45000 (past the workers' longest reconnect pause, 32 s). */
  recoveryGraceMs: number;
  /** How often unfinished calls that no worker or queue holds are looked for. FAAS_SWEEP_INTERVAL_MS, default 30000. */
  sweepIntervalMs: number;
  /** Largest upload. FAAS_MAX_UPLOAD_BYTES, default 50 MiB. */
  maxUploadBytes: number;
  /** Largest JSON body. FAAS_MAX_BODY_BYTES, default 1 MiB. */
  maxBodyBytes: number;
  /** Params nested deeper than this are refused with 400. FAAS_MAX_PARAMS_DEPTH, default 100. */
  maxParamsDepth: number;
  /** Calls waiting for a worker, in all (FAAS_MAX_QUEUE, 100000) and per function (FAAS_MAX_QUEUE_PER_FUNCTION, 20000); past them, 429. */
  maxQueue: number;
  maxQueuePerFunction: number;
  /** Live events kept for resuming (FAAS_EVENTS_BUFFER, 10000), and event streams open at once (FAAS_EVENTS_MAX_SUBSCRIBERS, 64). */
  eventsBuffer: number;
  eventsMaxSubscribers: number;
  /** Hosts callbacks may go to beside loopback (FAAS_CALLBACK_ALLOW), and how long one call's deliveries are tried (FAAS_CALLBACK_MAX_MS, 600000). */
  callbackAllow: CallbackPolicy;
  callbackMaxMs: number;
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
  /**
   * Wrong credentials per client address and per user name in a window of FAAS_AUTH_LOCKOUT_MS
   * (default 60000) before 429 AUTH_LOCKED until the window ends: FAAS_AUTH_MAX_FAILURES, default 10.
   */
  authMaxFailures: number;
  authLockoutMs: number;
  /**
   * Host names the api answers beside loopback names and IP addresses (DNS rebinding): FAAS_ALLOWED_HOSTS,
   * comma separated, `*.example.com` for subdomains, `*` for any; a name in FAAS_API_HOST is added.
   */
  allowedHosts: string;
  /** Registries runtime images may name beside Docker Hub and loopback ones: FAAS_ALLOWED_REGISTRIES. */
  registries: RegistryPolicy;
}

/** The api's environment: every variable it reads, with its default. */
export const apiEnv = commonEnv.extend({
  FAAS_API_HOST: text('127.0.0.1'),
  FAAS_API_PORT: int(3000, { min: 0, max: 65535 }),
  FAAS_DB_ENDPOINT: endpoint('tcp://127.0.0.1:5555'),
  FAAS_WORKER_ENDPOINT: endpoint('tcp://127.0.0.1:5556'),
  FAAS_API_DATA_DIR: text('./data/api'),
  FAAS_WAIT_TIMEOUT_MS: int(30_000, { min: 1, max: 15 * 60_000 }),
  FAAS_HEARTBEAT_MS: int(1000, { min: 50, max: 60_000 }),
  FAAS_WORKER_LIVENESS: int(3, { min: 2, max: 1000 }),
  FAAS_MAX_PARAMS_DEPTH: int(100, { min: 1, max: 10_000 }),
  FAAS_RECOVERY_GRACE_MS: int(45_000, { min: 0, max: 3_600_000 }),
  FAAS_SWEEP_INTERVAL_MS: int(30_000, { min: 100, max: 3_600_000 }),
  FAAS_MAX_UPLOAD_BYTES: int(50 * 1024 * 1024, { min: 1024, max: 1024 * 1024 * 1024 }),
  FAAS_MAX_BODY_BYTES: int(1024 * 1024, { min: 1024, max: 64 * 1024 * 1024 }),
  FAAS_MAX_QUEUE: int(100_000, { min: 1, max: 10_000_000 }),
  FAAS_MAX_QUEUE_PER_FUNCTION: int(20_000, { min: 1, max: 10_000_000 }),
  FAAS_EVENTS_BUFFER: int(10_000, { min: 1, max: 1_000_000 }),
  FAAS_EVENTS_MAX_SUBSCRIBERS: int(64, { min: 1, max: 10_000 }),
  FAAS_CALLBACK_ALLOW: optionalText({ pattern: /^[A-Za-z0-9.*:[\]_, -]*$/, hint: 'must be host names or addresses separated by commas (*.example.com for subdomains, * for any)' }),
  FAAS_CALLBACK_MAX_MS: int(600_000, { min: 1000, max: 7 * 24 * 3_600_000 }),
  FAAS_SCHEDULER: oneOf('warm', ['warm', 'home', 'least-loaded']),
  FAAS_MAX_TIMEOUT_MS: int(300_000, { min: 100, max: 3_600_000 }),
  FAAS_MAX_MEMORY_MB: int(2048, { min: 16, max: 1_048_576 }),
  FAAS_MAX_CPUS: int(4, { min: 1, max: 1024 }),
  FAAS_MAX_CONCURRENCY: int(1000, { min: 1, max: 1_000_000 }),
  FAAS_ALLOW_FUNCTION_NETWORK: flag(false),
  FAAS_AUTH_USERS: optionalText(),
  FAAS_AUTH_USERS_FILE: optionalText(),
  FAAS_ALLOW_UNAUTHENTICATED: flag(false),
  FAAS_RATE_LIMIT_PER_MINUTE: int(0, { min: 0, max: 10_000_000 }),
  FAAS_AUTH_MAX_FAILURES: int(10, { min: 1, max: 1_000_000 }),
  FAAS_AUTH_LOCKOUT_MS: int(60_000, { min: 1000, max: 24 * 3_600_000 }),
  FAAS_ALLOWED_REGISTRIES: optionalText({ pattern: /^[A-Za-z0-9.*:[\]_, -]*$/, hint: 'must be registry hosts (host or host:port) separated by commas, or *' }),
  FAAS_ALLOWED_HOSTS: optionalText({ pattern: /^[A-Za-z0-9.*:[\]_, -]*$/, hint: 'must be host names separated by commas (*.example.com for subdomains, * for any)' }),
});

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const e = parseEnv(apiEnv, env);
  const host = e.FAAS_API_HOST;
  const users = parseUsers(e.FAAS_AUTH_USERS ?? '', 'FAAS_AUTH_USERS');
  if (e.FAAS_AUTH_USERS_FILE) {
    let contents: string;
    try {
      contents = readFileSync(e.FAAS_AUTH_USERS_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError(`FAAS_AUTH_USERS_FILE cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    for (const [name, hash] of parseUsers(contents, 'FAAS_AUTH_USERS_FILE')) users.set(name, hash);
  }
  const allowUnauthenticated = e.FAAS_ALLOW_UNAUTHENTICATED;
  if (users.size === 0 && !onlyLocal(host, env, 'FAAS_API_PUBLISHED') && !allowUnauthenticated) {
    throw new ConfigError(
      `FAAS_API_HOST=${host}${env.FAAS_API_PUBLISHED ? ` published on ${env.FAAS_API_PUBLISHED} (FAAS_API_PUBLISHED)` : ''} would serve everyone who reaches it without a password: configure users (FAAS_AUTH_USERS or FAAS_AUTH_USERS_FILE), bind a loopback address, or set FAAS_ALLOW_UNAUTHENTICATED=true`,
    );
  }
  const workerEndpoint = e.FAAS_WORKER_ENDPOINT;
  checkExposure('FAAS_WORKER_ENDPOINT', workerEndpoint, loadCurveConfig(env, 'server'), env);
  return {
    host,
    port: e.FAAS_API_PORT,
    dbEndpoint: e.FAAS_DB_ENDPOINT,
    workerEndpoint,
    dataDir: path.resolve(e.FAAS_API_DATA_DIR),
    waitTimeoutMs: e.FAAS_WAIT_TIMEOUT_MS,
    heartbeatMs: e.FAAS_HEARTBEAT_MS,
    livenessBeats: e.FAAS_WORKER_LIVENESS,
    recoveryGraceMs: e.FAAS_RECOVERY_GRACE_MS,
    sweepIntervalMs: e.FAAS_SWEEP_INTERVAL_MS,
    maxUploadBytes: e.FAAS_MAX_UPLOAD_BYTES,
    maxBodyBytes: e.FAAS_MAX_BODY_BYTES,
    maxParamsDepth: e.FAAS_MAX_PARAMS_DEPTH,
    maxQueue: e.FAAS_MAX_QUEUE,
    maxQueuePerFunction: e.FAAS_MAX_QUEUE_PER_FUNCTION,
    eventsBuffer: e.FAAS_EVENTS_BUFFER,
    eventsMaxSubscribers: e.FAAS_EVENTS_MAX_SUBSCRIBERS,
    callbackAllow: callbackPolicy(e.FAAS_CALLBACK_ALLOW ?? ''),
    callbackMaxMs: e.FAAS_CALLBACK_MAX_MS,
    scheduler: e.FAAS_SCHEDULER,
    limits: {
      maxTimeoutMs: e.FAAS_MAX_TIMEOUT_MS,
      maxMemoryMb: e.FAAS_MAX_MEMORY_MB,
      maxCpus: e.FAAS_MAX_CPUS,
      maxConcurrency: e.FAAS_MAX_CONCURRENCY,
      allowNetwork: e.FAAS_ALLOW_FUNCTION_NETWORK,
    },
    users,
    allowUnauthenticated,
    rateLimitPerMinute: e.FAAS_RATE_LIMIT_PER_MINUTE,
    authMaxFailures: e.FAAS_AUTH_MAX_FAILURES,
    authLockoutMs: e.FAAS_AUTH_LOCKOUT_MS,
    allowedHosts: e.FAAS_ALLOWED_HOSTS ?? '',
    registries: registryPolicy(e.FAAS_ALLOWED_REGISTRIES ?? ''),
  };
}
