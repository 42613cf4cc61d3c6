import { runMain } from '../protocol/config';
import { createLogger } from '../protocol/log';
import { loadDbConfig } from './config';
import { DbServer } from './server';
import { PlatformStore } from './store';

runMain('db-service', async () => {
  const config = loadDbConfig();
  const log = createLogger('db-service');
  const store = await PlatformStore.open(config.dir);
  const server = new DbServer(store, log);
  const endpoint = await server.bind(config.endpoint);
  log.info({ endpoint, dir: config.dir, lastCallNum: store.callCount }, 'db-service listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'db-service stopping');
    await server.close();
    await store.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
});
