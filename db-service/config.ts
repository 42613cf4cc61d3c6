import path from 'node:path';
import { commonEnv, decimal, endpoint, int, optionalText, parseEnv, text } from '../protocol/config';
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
  /** The key that seals secrets: FAAS_SECRETS_KEY, else the file FAAS_SECRETS_KEY_FILE (default <FAAS_DB_DIR>.secrets.key, made on first start). */
  secretsKey?: string;
  secretsKeyFile: string;
}

/** db-service's environment: every variable it reads, with its default. */
export const dbEnv = commonEnv.extend({
  FAAS_DB_DIR: text('./data/db'),
  FAAS_DB_ENDPOINT: endpoint('tcp://127.0.0.1:5555'),
  FAAS_RETENTION_DAYS: decimal(30, { min: 0, max: 36_500 }),
  FAAS_RETENTION_MAX_CALLS: int(1_000_000, { min: 0 }),
  FAAS_RETENTION_INTERVAL_MS: int(60_000, { min: 100, max: 86_400_000 }),
  FAAS_SECRETS_KEY: optionalText(),
  FAAS_SECRETS_KEY_FILE: optionalText(),
});

export function loadDbConfig(env: NodeJS.ProcessEnv = process.env): DbConfig {
  const e = parseEnv(dbEnv, env);
  checkExposure('FAAS_DB_ENDPOINT', e.FAAS_DB_ENDPOINT, loadCurveConfig(env, 'server'), env);
  return {
    dir: path.resolve(e.FAAS_DB_DIR),
    endpoint: e.FAAS_DB_ENDPOINT,
    retentionDays: e.FAAS_RETENTION_DAYS,
    retentionMaxCalls: e.FAAS_RETENTION_MAX_CALLS,
    retentionIntervalMs: e.FAAS_RETENTION_INTERVAL_MS,
    ...(e.FAAS_SECRETS_KEY ? { secretsKey: e.FAAS_SECRETS_KEY } : {}),
    secretsKeyFile: path.resolve(e.FAAS_SECRETS_KEY_FILE ?? `${path.resolve(e.FAAS_DB_DIR)}.secrets.key`),
  };
}
