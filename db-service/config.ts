import path from 'node:path';
import { envEndpoint, envString } from '../protocol/config';
import { checkExposure, loadCurveConfig } from '../protocol/curve';

export interface DbConfig {
  /** Folder of the LevelDB store. FAAS_DB_DIR, default ./data/db. */
  dir: string;
  /** Where the ROUTER socket binds. FAAS_DB_ENDPOINT, default tcp://127.0.0.1:5555. */
  endpoint: string;
}

export function loadDbConfig(env: NodeJS.ProcessEnv = process.env): DbConfig {
  const endpoint = envEndpoint(env, 'FAAS_DB_ENDPOINT', 'tcp://127.0.0.1:5555');
  checkExposure('FAAS_DB_ENDPOINT', endpoint, loadCurveConfig(env, 'server'), env);
  return {
    dir: path.resolve(envString(env, 'FAAS_DB_DIR', './data/db')),
    endpoint,
  };
}
