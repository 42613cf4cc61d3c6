import { runMain } from '../protocol/config';
import { clientPublicKey } from '../protocol/curve';
import { createLogger } from '../protocol/log';
import { loadWorkerConfig } from './config';
import { Worker } from './worker';

runMain('worker', async () => {
  const config = loadWorkerConfig();
  const log = createLogger('worker', { node: config.nodeId });
  const worker = new Worker(config, log);
  await worker.start();
  // With CURVE, the key the servers' allow-list must hold (as worker:KEY); miniworkers inherit the pair.
  log.info({ api: config.apiEndpoint, capacity: config.capacity, dataDir: config.dataDir, curveKey: clientPublicKey() }, 'worker started');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'worker stopping');
    // Past the drain grace, cleanup gets ten seconds more before the process gives up.
    const force = setTimeout(() => process.exit(1), config.drainGraceMs + 10_000);
    force.unref();
    await worker.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
});
