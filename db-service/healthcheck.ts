import { loadEnvFiles, localEndpoint } from '../protocol/config';
import { DbClient } from '../protocol/db-client';
import { loadDbConfig } from './config';

/** Container healthcheck: exit 0 when db-service answers a ping over its own socket within 2 s. */
async function check(): Promise<number> {
  loadEnvFiles();
  const db = new DbClient(localEndpoint(loadDbConfig().endpoint), { timeoutMs: 2000 }).start();
  try {
    await db.ping(2000);
    return 0;
  } catch (err) {
    process.stderr.write(`db-service does not answer: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    db.close();
  }
}

void check().then((code) => process.exit(code));
