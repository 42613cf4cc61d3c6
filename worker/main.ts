import v8 from 'node:v8';
import { runMain } from '../protocol/config';
import { clientPublicKey } from '../protocol/curve';
import { createLogger } from '../protocol/log';
import { loadWorkerConfig } from './config';
import { Worker } from './worker';

/**
 * Each miniworker thread is a V8 isolate of its own that sees 1/n of the node's calls, so its code
 * stays in the interpreter and baseline tiers (perf: 0.9 of its 10.6 % of the samples in optimised
 * code at 16 clients). A smaller interrupt budget lets V8 optimise a function after less of it has
 * run: measured at 16 clients, the worker's CPU per call fell 17–31 % in three A/B pairs. Set before
 * any thread starts; it holds for every isolate of this process.
 */
v8.setFlagsFromString('--interrupt-budget=16384');

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
