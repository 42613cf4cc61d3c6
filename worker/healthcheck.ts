import { stat } from 'node:fs/promises';
import { loadEnvFiles } from '../protocol/config';
import { aliveFile, loadWorkerConfig } from './config';

/** Container healthcheck: exit 0 while the worker hears the api (its alive file is fresh). */
async function check(): Promise<number> {
  loadEnvFiles();
  const config = loadWorkerConfig();
  const limitMs = Math.max(15_000, config.heartbeatMs * 10);
  try {
    const age = Date.now() - (await stat(aliveFile(config.dataDir))).mtimeMs;
    if (age <= limitMs) return 0;
    process.stderr.write(`the worker has not heard the api for ${Math.round(age / 1000)} s\n`);
  } catch {
    process.stderr.write('the worker has not heard the api yet\n');
  }
  return 1;
}

void check().then((code) => process.exit(code));
