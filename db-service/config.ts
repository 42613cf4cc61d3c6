import path from 'node:path';
import { envEndpoint, envInt, envNumber, envString } from '../protocol/config';
import { checkExposure, loadCurveConfig } from '../protocol/curve';

export interface DbConfig {
  /** Folder of the LevelDB store. FAAS_DB_DIR, default ./data/db. */
  dir: string;
  /** Where the ROUTER socket binds. FAAS_DB_ENDPOINT, default tcp://127.0.0.1:5555. */
  endpoint: string;
  /** Ended calls (with their logs) older than this are removed. FAAS_RETENTION_DAYS, default 30; 0 keeps them. */
  retentionDays: number;
  /** At most this many calls are kept, the oldest ended ones go first. FAAS_RETENTION_MAX_CALLS, default 1000000; 0: no cap. */
  retentionMaxCalls: number;
  /** How often retention runs. FAAS_RETENTION_INTERVAL_MS, default 60000. */
  retentionIntervalMs: number;
}

export function loadDbConfig(env: NodeJS.ProcessEnv = process.env): DbConfig {
  const endpoint = envEndpoint(env, 'FAAS_DB_ENDPOINT', 'tcp://127.0.0.1:5555');
  checkExposure('FAAS_DB_ENDPOINT', endpoint, loadCurveConfig(env, 'server'), env);
  return {
    dir: path.resolve(envString(env, 'FAAS_DB_DIR', './data/db')),
    endpoint,
    retentionDays: envNumber(env, 'FAAS_RETENTION_DAYS', 30, { min: 0, max: 36_500 }),
    retentionMaxCalls: envInt(env, 'FAAS_RETENTION_MAX_CALLS', 1_000_000, { min: 0 }),
    retentionIntervalMs: envInt(env, 'FAAS_RETENTION_INTERVAL_MS', 60_000, { min: 100, max: 86_400_000 }),
  };
}
