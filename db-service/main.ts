import { runMain } from '../protocol/config';
import { startZap } from '../protocol/curve';
import { createLogger } from '../protocol/log';
import { loadDbConfig } from './config';
import { DbServer } from './server';
import { SecretBox } from './secret-box';
import { PlatformStore } from './store';

runMain('db-service', async () => {
  const config = loadDbConfig();
  const log = createLogger('db-service');
  const store = await PlatformStore.open(config.dir, SecretBox.load(config.secretsKey, config.secretsKeyFile));
  // With CURVE, the allow-list's gatekeeper runs before the socket exists, so no key slips past it.
  const zap = await startZap(log);
  const server = new DbServer(store, log);
  const endpoint = await server.bind(config.endpoint);
  log.info({ endpoint, dir: config.dir, lastCallNum: store.callCount }, 'db-service listening');

  // Retention, in the background: one pass at a time.
  let pruning = false;
  const prune = async () => {
    if (pruning || (config.retentionDays === 0 && config.retentionMaxCalls === 0)) return;
    pruning = true;
    try {
      const olderThan = config.retentionDays > 0 ? new Date(Date.now() - config.retentionDays * 86_400_000).toISOString() : undefined;
      const { deleted } = await store.prune({ olderThan, maxCalls: config.retentionMaxCalls });
      if (deleted > 0) log.info({ deleted, retentionDays: config.retentionDays, maxCalls: config.retentionMaxCalls }, 'old calls removed');
    } catch (err) {
      log.warn({ err: String(err) }, 'retention pass failed');
    } finally {
      pruning = false;
    }
  };
  const retention = setInterval(() => void prune(), config.retentionIntervalMs);
  retention.unref();

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'db-service stopping');
    clearInterval(retention);
    await server.close();
    await zap?.close();
    await store.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
});
