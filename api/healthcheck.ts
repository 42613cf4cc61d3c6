import { loadEnvFiles } from '../protocol/config';
import { loadApiConfig } from './config';

/**
 * Container healthcheck: exit 0 when the api answers /health at all. A 503 (no worker yet) still means
 * the api lives: workers wait for a healthy api before they connect, so this must not wait for them.
 */
async function check(): Promise<number> {
  loadEnvFiles();
  const config = loadApiConfig();
  const host = ['0.0.0.0', '::', ''].includes(config.host) ? '127.0.0.1' : config.host;
  try {
    const response = await fetch(`http://${host.includes(':') ? `[${host}]` : host}:${config.port}/health`, { signal: AbortSignal.timeout(2000) });
    return response.status === 200 || response.status === 503 ? 0 : 1;
  } catch (err) {
    process.stderr.write(`the api does not answer: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

void check().then((code) => process.exit(code));
