/**
 * `npm run bench:scale`: how far one api and one db-service go as nodes are added. For each N it
 * starts db-service and the api for real, then N workers on the hollow back-end as real processes
 * over real ZeroMQ (they run no container: a call answers its params after FAAS_HOLLOW_CALL_MS),
 * registers FUNCTIONS handler-mode functions, and measures:
 *   - idle: the api's and db-service's CPU while only heartbeats flow (per heartbeat);
 *   - load: CLIENTS clients calling `POST /invokeFunction?wait=true` back to back for WINDOW_MS:
 *     calls/s, client p50/p99, scheduling latency (the call's startedAt − createdAt, as stored),
 *     api and db-service CPU per call, db-service disk writes, memory.
 * The workers share the machine's cores with the api: the api's CPU per call, not calls/s, is what
 * says where one api stops (see docs/SCALING.md). Results go to bench/scale-results.json.
 *
 * BENCH_SCALE_NODES (default 1,10,50,100,200), BENCH_SCALE_WINDOW_MS (10000), BENCH_SCALE_CLIENTS (64).
 * A step that the machine's free memory cannot hold is skipped and said so.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tarGzOf } from '../test/helpers/archives';
import { TestPlatform } from '../test/helpers/platform';
import { homeScore } from '../api/placement';
import { clockTicksPerSecond, readStat, rssMb } from './procfs';
import { median, percentile, round } from './stats';

const NODES = (process.env.BENCH_SCALE_NODES ?? '1,10,50,100,200').split(',').map((n) => Number(n.trim())).filter((n) => Number.isInteger(n) && n > 0);
const WINDOW_MS = Number(process.env.BENCH_SCALE_WINDOW_MS ?? 10_000);
const CLIENTS = Number(process.env.BENCH_SCALE_CLIENTS ?? 64);
const IDLE_MS = 5_000;
const FUNCTIONS = 8;
const HEARTBEAT_MS = 1000;
/** What one hollow worker holds (measured: about 90 MB when mostly idle) until a step measured it, then that mean with a tenth to spare. BENCH_SCALE_MB_PER_WORKER. */
let mbPerWorker = Number(process.env.BENCH_SCALE_MB_PER_WORKER ?? 110);
const RUNTIME = { name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };

interface Step {
  nodes: number;
  skipped?: string;
  joinSeconds?: number;
  callsPerSecond?: number;
  calls?: number;
  errors?: number;
  clientP50Ms?: number;
  clientP99Ms?: number;
  schedulingP50Ms?: number;
  schedulingP99Ms?: number;
  /** The api's CPU per call, less its idle CPU (mostly heartbeats) over the same window. */
  apiCpuPerCallUs?: number;
  /** All of the api's CPU in the window, per call. */
  apiCpuPerCallAllUs?: number;
  dbCpuPerCallUs?: number;
  /** The api's CPU while idle, µs a second; per heartbeat is its growth over the first step's, per beat. */
  apiIdleUsPerSecond?: number;
  apiCpuPerHeartbeatUs?: number;
  apiIdleCpuPercent?: number;
  dbIdleCpuPercent?: number;
  dbWriteSyscallsPerSecond?: number;
  dbWrittenMbPerSecond?: number;
  apiRssMb?: number;
  dbRssMb?: number;
  workerRssMbMean?: number;
  /** Calls served per node in the window: min / median / max, to see that none starves. */
  callsPerNode?: { min: number; median: number; max: number; nodesUsed: number };
}

function cpuMicros(pid: number): number {
  const stat = readStat(pid);
  return stat ? (stat.ticks / clockTicksPerSecond()) * 1e6 : NaN;
}

function diskIo(pid: number): { syscw: number; writeBytes: number } {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { syscw: field('syscw'), writeBytes: field('write_bytes') };
  } catch {
    return { syscw: NaN, writeBytes: NaN };
  }
}

async function json(platform: TestPlatform, method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
  const answer = await fetch(`${platform.url}${route}`, {
    method,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  return { status: answer.status, body: await answer.json().catch(() => undefined) };
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(200);
  }
  throw new Error(`${what} not within ${timeoutMs} ms`);
}

async function step(nodes: number, packageTgz: Buffer): Promise<Step> {
  const needMb = Math.round(nodes * mbPerWorker + 1000);
  const freeMb = os.freemem() / 2 ** 20;
  if (freeMb < needMb) return { nodes, skipped: `needs about ${needMb} MB free, ${Math.round(freeMb)} MB are` };
  const platform = await TestPlatform.start({
    services: ['db', 'api'],
    env: {
      FAAS_LOG_LEVEL: 'warn',
      FAAS_HEARTBEAT_MS: String(HEARTBEAT_MS),
    },
  });
  try {
    await platform.waitApi();
    await waitFor('db-service', 30_000, async () => ((await json(platform, 'GET', '/health')).body?.db?.connected ? true : undefined));
    const runtime = await json(platform, 'POST', '/registerRuntime', RUNTIME);
    if (runtime.status !== 201) throw new Error(`registerRuntime answered ${runtime.status}: ${JSON.stringify(runtime.body)}`);
    for (let f = 0; f < FUNCTIONS; f++) {
      const answer = await platform.upload('py', `f${f}`, packageTgz, 'f.tar.gz');
      if (answer.status !== 201) throw new Error(`registerFunction answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    }

    // Workers start ten at a time, each ten joined before the next: a node process takes about a
    // second of CPU to start, and this machine's cores are shared with everything measured here.
    const joinStart = Date.now();
    const workers: ReturnType<TestPlatform['spawnWorker']>[] = [];
    let listed = 0;
    const joinBound = 60_000 + nodes * 1500;
    try {
      for (let i = 0; i < nodes; i += 10) {
        for (let j = i; j < Math.min(nodes, i + 10); j++) {
          workers.push(
            platform.spawnWorker(`h${j}`, {
              FAAS_BACKEND: 'hollow',
              FAAS_HOLLOW_START_MS: '0',
              FAAS_HOLLOW_CALL_MS: '1',
              FAAS_WORKER_CAPACITY: '8',
              FAAS_MIN_MINIWORKERS: '1',
              FAAS_PREWARM: '0',
            }),
          );
        }
        await waitFor(`${workers.length} workers joined`, Math.max(1000, joinStart + joinBound - Date.now()), async () => {
          const list = (await json(platform, 'GET', '/v1/workers')).body;
          listed = Array.isArray(list) ? list.length : listed;
          return listed >= workers.length ? true : undefined;
        });
      }
    } catch {
      return { nodes, skipped: `only ${listed} of ${nodes} workers joined within ${Math.round(joinBound / 1000)} s` };
    }
    const joinSeconds = (Date.now() - joinStart) / 1000;
    // Warm-up: every function called a few times, so that the window below sees warm placement.
    await Promise.all(Array.from({ length: FUNCTIONS * 3 }, (_, i) => json(platform, 'POST', '/invokeFunction?wait=true', { funcName: `f${i % FUNCTIONS}`, params: { warm: i } })));
    await sleep(1000);

    const api = platform.procs.get('api')!.pid!;
    const db = platform.procs.get('db')!.pid!;
    // Idle: heartbeats only.
    const idle0 = { api: cpuMicros(api), db: cpuMicros(db), at: process.hrtime.bigint() };
    await sleep(IDLE_MS);
    const idleSeconds = Number(process.hrtime.bigint() - idle0.at) / 1e9;
    const apiIdle = cpuMicros(api) - idle0.api;
    const dbIdle = cpuMicros(db) - idle0.db;

    // Load: CLIENTS closed-loop clients.
    const latencies: number[] = [];
    const scheduling: number[] = [];
    const perNode = new Map<string, number>();
    let errors = 0;
    let next = 0;
    const load0 = { api: cpuMicros(api), db: cpuMicros(db), io: diskIo(db), at: process.hrtime.bigint() };
    const end = Date.now() + WINDOW_MS;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (Date.now() < end) {
          const i = next++;
          const t = process.hrtime.bigint();
          const answer = await json(platform, 'POST', '/invokeFunction?wait=true', { funcName: `f${i % FUNCTIONS}`, params: { i } }).catch(() => undefined);
          latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
          const call = answer?.body;
          if (answer?.status !== 200 || call?.status !== 'DONE') {
            errors += 1;
            continue;
          }
          scheduling.push(Date.parse(call.startedAt) - Date.parse(call.createdAt));
          perNode.set(call.node, (perNode.get(call.node) ?? 0) + 1);
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - load0.at) / 1e9;
    const apiLoad = cpuMicros(api) - load0.api;
    const dbLoad = cpuMicros(db) - load0.db;
    const io1 = diskIo(db);
    const done = scheduling.length;
    const counts = [...perNode.values()];
    const workerRss = workers.map((w) => (w.pid ? rssMb(w.pid) : 0)).filter((mb) => mb > 0);
    return {
      nodes,
      joinSeconds: round(joinSeconds, 1),
      calls: done,
      errors,
      callsPerSecond: round(done / seconds, 0),
      clientP50Ms: round(median(latencies), 2),
      clientP99Ms: round(percentile(latencies, 99), 2),
      schedulingP50Ms: round(median(scheduling), 1),
      schedulingP99Ms: round(percentile(scheduling, 99), 1),
      apiCpuPerCallUs: round((apiLoad - (apiIdle / idleSeconds) * seconds) / Math.max(1, done), 0),
      apiCpuPerCallAllUs: round(apiLoad / Math.max(1, done), 0),
      dbCpuPerCallUs: round(dbLoad / Math.max(1, done), 0),
      apiIdleUsPerSecond: round(apiIdle / idleSeconds, 0),
      apiIdleCpuPercent: round((apiIdle / (idleSeconds * 1e6)) * 100, 1),
      dbIdleCpuPercent: round((dbIdle / (idleSeconds * 1e6)) * 100, 1),
      dbWriteSyscallsPerSecond: round((io1.syscw - load0.io.syscw) / seconds, 0),
      dbWrittenMbPerSecond: round((io1.writeBytes - load0.io.writeBytes) / seconds / 2 ** 20, 2),
      apiRssMb: round(rssMb(api), 0),
      dbRssMb: round(rssMb(db), 0),
      workerRssMbMean: round(workerRss.reduce((a, b) => a + b, 0) / Math.max(1, workerRss.length), 0),
      callsPerNode: { min: counts.length < nodes ? 0 : Math.min(...counts), median: median(counts.length < nodes ? [...counts, ...Array(nodes - counts.length).fill(0)] : counts), max: Math.max(0, ...counts), nodesUsed: counts.length },
    };
  } finally {
    await platform.stop();
  }
}

/**
 * The partitioned design on paper (docs/SCALING.md): calls split by function over K api/db-service
 * pairs with rendezvous hashing, as placement does over nodes. Function popularity follows Zipf
 * (exponent 1, 1,000 functions, as FaaS traces show a few functions taking most calls): the busiest
 * pair's share of calls, against the 1/K of an even split, says what K pairs really give.
 */
function partitionModel(): Array<{ pairs: number; busiestShare: number; evenShare: number; speedup: number }> {
  const functions = 1000;
  const weights = Array.from({ length: functions }, (_, i) => 1 / (i + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  return [2, 4, 8, 16].map((pairs) => {
    const load = new Array<number>(pairs).fill(0);
    weights.forEach((w, i) => {
      let best = 0;
      for (let p = 1; p < pairs; p++) if (homeScore(`fn-${i}`, `pair-${p}`) > homeScore(`fn-${i}`, `pair-${best}`)) best = p;
      load[best]! += w / total;
    });
    const busiest = Math.max(...load);
    return { pairs, busiestShare: round(busiest, 3), evenShare: round(1 / pairs, 3), speedup: round(1 / busiest, 2) };
  });
}

function table(steps: Step[]): string {
  const rows = [
    '| nodes | calls/s | client p50 / p99 ms | scheduling p50 / p99 ms | api µs/call (all) | db µs/call | api µs/heartbeat | api idle CPU | db writes/s (MB/s) | api / db / worker RSS MB | calls per node min / median / max (nodes used) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of steps) {
    if (s.skipped) {
      rows.push(`| ${s.nodes} | skipped: ${s.skipped} |||||||||`);
      continue;
    }
    const spread = s.callsPerNode!;
    rows.push(
      `| ${s.nodes} | ${s.callsPerSecond} | ${s.clientP50Ms} / ${s.clientP99Ms} | ${s.schedulingP50Ms} / ${s.schedulingP99Ms} | ${s.apiCpuPerCallUs} (${s.apiCpuPerCallAllUs}) | ${s.dbCpuPerCallUs} | ${s.apiCpuPerHeartbeatUs ?? '—'} | ${s.apiIdleCpuPercent}% | ${s.dbWriteSyscallsPerSecond} (${s.dbWrittenMbPerSecond}) | ${s.apiRssMb} / ${s.dbRssMb} / ${s.workerRssMbMean} | ${spread.min} / ${spread.median} / ${spread.max} (${spread.nodesUsed}) |`,
    );
  }
  return rows.join('\n');
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-scale-'));
  writeFileSync(path.join(dir, 'handler.py'), 'def handle(params):\n    return params\n');
  const packageTgz = await tarGzOf(dir);
  rmSync(dir, { recursive: true, force: true });
  const steps: Step[] = [];
  for (const nodes of NODES) {
    const started = Date.now();
    const result = await step(nodes, packageTgz);
    steps.push(result);
    if (result.workerRssMbMean) mbPerWorker = result.workerRssMbMean * 1.1;
    process.stdout.write(`${nodes} nodes: ${JSON.stringify(result)} (${Math.round((Date.now() - started) / 1000)} s)\n`);
  }
  // Per heartbeat: what the api's idle CPU grows by from the first step, over the beats added.
  const base = steps.find((s) => !s.skipped);
  for (const s of steps) {
    if (s.skipped || !base || s === base) continue;
    const beatsPerSecond = ((s.nodes - base.nodes) * 1000) / HEARTBEAT_MS;
    s.apiCpuPerHeartbeatUs = round((s.apiIdleUsPerSecond! - base.apiIdleUsPerSecond!) / beatsPerSecond, 1);
  }
  const partitions = partitionModel();
  const out = { at: new Date().toISOString(), cpus: os.cpus().length, memoryGb: round(os.totalmem() / 2 ** 30, 1), windowMs: WINDOW_MS, clients: CLIENTS, functions: FUNCTIONS, heartbeatMs: HEARTBEAT_MS, steps, partitions };
  writeFileSync(path.join(__dirname, '..', '..', 'bench', 'scale-results.json'), `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`\n${table(steps)}\n`);
  process.stdout.write(`\ncalls split by function over K api/db pairs (Zipf popularity, 1,000 functions):\n`);
  for (const p of partitions) process.stdout.write(`  K=${p.pairs}: busiest pair ${p.busiestShare} of calls (even: ${p.evenShare}), ${p.speedup}x one pair\n`);
}

main().catch((err) => {
  process.stderr.write(`bench:scale failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
