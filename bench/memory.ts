/**
 * The platform's memory per warm container: what the worker and its miniworkers hold (resident
 * now, not the peak), divided by the warm containers they keep. The containers' own memory is not
 * in it: that is the function's, not the platform's.
 */
import { TestPlatform } from '../test/helpers/platform';
import { handlerPackage, uploadWithFields, workers } from './functions';
import { descendantPids, isNodeProcess, pssMb, rssMb, threadCount } from './procfs';
import { since } from './stats';

export interface WorkerSideMemory {
  workerRssMb: number;
  /** Summed over the node processes under the worker; 0 when miniworkers are threads of the worker (they are in workerRssMb). */
  miniworkersRssMb: number;
  miniworkers: number;
  /** The same with shared pages divided among the processes that share them (Pss). */
  workerPssMb: number;
  miniworkersPssMb: number;
}

export function workerSideMemory(workerPid: number): WorkerSideMemory {
  const miniworkers = descendantPids(workerPid).filter((pid) => isNodeProcess(pid));
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  return {
    workerRssMb: rssMb(workerPid),
    miniworkersRssMb: sum(miniworkers.map(rssMb)),
    miniworkers: miniworkers.length,
    workerPssMb: pssMb(workerPid),
    miniworkersPssMb: sum(miniworkers.map(pssMb)),
  };
}

export interface WarmContainerMemory extends WorkerSideMemory {
  warmContainers: number;
  /** (worker + miniworkers) RSS / warm containers. */
  perContainerRssMb: number;
  perContainerPssMb: number;
}

/** Measures now: the worker side's memory and the platform's warm containers (label io.faas.role=warm). */
export async function memoryPerWarmContainer(platform: TestPlatform): Promise<WarmContainerMemory> {
  const workerPid = platform.procs.get('worker')?.pid;
  if (workerPid === undefined) throw new Error('the platform has no worker process to measure');
  const warmContainers = (await platform.containers(['io.faas.role=warm'])).length;
  const memory = workerSideMemory(workerPid);
  if (warmContainers === 0) throw new Error('no warm container to divide the worker side\'s memory by');
  return {
    ...memory,
    warmContainers,
    perContainerRssMb: (memory.workerRssMb + memory.miniworkersRssMb) / warmContainers,
    perContainerPssMb: (memory.workerPssMb + memory.miniworkersPssMb) / warmContainers,
  };
}

export interface WarmContainersRss extends WarmContainerMemory {
  requested: number;
  warmupMs: number;
  /** The worker process's threads at the end (its miniworkers, when they are threads, among them). */
  workerThreads: number;
}

/**
 * The 500-warm-containers row: a platform of its own, whose one node may hold `count` containers
 * and keeps `count / functions` warm for each of `functions` functions (FAAS_PREWARM, the
 * function preload policy), so that `count` containers start without `count` image builds. It
 * waits until they are all warm, then measures the worker side's memory as above.
 */
export async function warmContainersRss(count: number, options: { functions?: number; timeoutMs?: number } = {}): Promise<WarmContainersRss> {
  const functions = options.functions ?? Math.ceil(count / 250);
  const perFunction = Math.ceil(count / functions);
  const platform = await TestPlatform.start({
    env: {
      FAAS_LOG_LEVEL: 'warn',
      FAAS_WORKER_CAPACITY: String(count + 8),
      FAAS_PRELOAD: 'function',
      FAAS_PREWARM: String(perFunction),
      FAAS_KEEP_ALIVE_MS: '3600000',
      FAAS_IDLE_EXIT_MS: '3600000',
    },
  });
  try {
    await platform.json('POST', '/registerRuntime', { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 /opt/faas/handler.py', mode: 'handler' });
    const code = await handlerPackage('def handle(params):\n    return params\n');
    const started = process.hrtime.bigint();
    for (let i = 0; i < functions; i++) await uploadWithFields(platform, 'python', `rss${i}`, code, {});
    const deadline = Date.now() + (options.timeoutMs ?? Math.max(300_000, count * 1_500));
    for (;;) {
      const warm = (await workers(platform)).reduce((sum, w) => sum + w.warm.reduce((n, f) => n + f.containers, 0), 0);
      if (warm >= count) break;
      if (Date.now() > deadline) throw new Error(`${warm} of ${count} containers warm after ${Math.round(since(started) / 1000)} s`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const warmupMs = since(started);
    const workerPid = platform.procs.get('worker')!.pid!;
    return { requested: count, warmupMs, workerThreads: threadCount(workerPid), ...(await memoryPerWarmContainer(platform)) };
  } finally {
    await platform.stop();
  }
}
