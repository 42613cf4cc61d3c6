import { createServer } from 'node:http';
import { runMain } from '../protocol/config';
import { startZap } from '../protocol/curve';
import { createLogger } from '../protocol/log';
import { loadApiConfig } from './config';
import { Platform } from './platform';
import { createApp } from './routes';

runMain('api', async () => {
  const config = loadApiConfig();
  const log = createLogger('api');
  // With CURVE, the allow-list's gatekeeper runs before the worker socket exists, so no key slips past it.
  const zap = await startZap(log);
  const platform = new Platform(config, log);
  const workerEndpoint = await platform.start();
  const server = createServer(createApp(platform, config));
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ url: `http://${config.host}:${port}`, workerEndpoint, dbEndpoint: config.dbEndpoint }, 'api listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'api stopping');
    server.close();
    server.closeAllConnections();
    await platform.close();
    await zap?.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
});
