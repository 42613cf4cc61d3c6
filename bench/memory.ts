/**
 * The platform's memory per warm container: what the worker and its miniworkers hold (resident
 * now, not the peak), divided by the warm containers they keep. The containers' own memory is not
 * in it: that is the function's, not the platform's.
 */
import type { TestPlatform } from '../test/helpers/platform';
import { handlerPackage, uploadWithFields, waitWarm, workers } from './functions';
import { descendantPids, isNodeProcess, pssMb, rssMb } from './procfs';
import { since } from './stats';

export interface WorkerSideMemory {
  workerRssMb: number;
  /** Summed over the node processes under the worker; 0 when miniworkers are threads of the worker. */
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
}

/**
 * The 500-warm-containers row, ready to call (main() does not yet): registers `count` functions
 * with `preload: function` on `runtime` (which must be registered already), waits until each has
 * a warm container, then measures the worker side's memory.
 *
 * The platform must have been started with FAAS_WORKER_CAPACITY of at least the containers it
 * already runs plus `count` (and a FAAS_KEEP_ALIVE_MS long enough to keep them), or the worker
 * cannot keep them all warm: this is checked first, through GET /workers.
 */
export async function warmContainersRss(platform: TestPlatform, count: number, options: { runtime?: string; prefix?: string; timeoutMs?: number } = {}): Promise<WarmContainersRss> {
  const runtime = options.runtime ?? 'python';
  const prefix = options.prefix ?? 'rss';
  const capacity = (await workers(platform)).reduce((sum, w) => sum + w.capacity, 0);
  const running = (await platform.containers()).length;
  if (capacity < running + count) {
    throw new Error(`${count} more warm containers do not fit: the workers' capacity is ${capacity} and ${running} containers run already (start the platform with FAAS_WORKER_CAPACITY >= ${running + count})`);
  }
  const names = Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`);
  const code = await handlerPackage('def handle(params):\n    return params\n');
  const started = process.hrtime.bigint();
  for (const name of names) await uploadWithFields(platform, runtime, name, code, { preload: 'function' });
  await waitWarm(platform, names, options.timeoutMs ?? Math.max(240_000, count * 2_000));
  const warmupMs = since(started);
  return { requested: count, warmupMs, ...(await memoryPerWarmContainer(platform)) };
}
