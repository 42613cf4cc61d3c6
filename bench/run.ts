/**
 * `npm run bench`: starts the real platform from this checkout and measures, in one run, Docker's
 * own floors beside the platform's cold, pre-warmed and warm calls, throughput, 10,000 async calls
 * and 100 distinct functions. Prints a table and writes bench/results.json.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { ensureRuntimeImages } from '../cli/actions/images';
import { DICE, tarGzOf } from '../test/helpers/archives';
import { TestPlatform } from '../test/helpers/platform';
import { createStartFloor, execFloor, httpFloor, stdioFloor } from './floors';
import { requestJson } from './http';
import { median, percentile, round, runConcurrent, since } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const docker = new Docker();
const rows: Array<[string, string]> = [];
const results: Record<string, number> = {};

function record(key: string, value: number, label: string, unit = 'ms'): void {
  results[key] = round(value, 3);
  rows.push([label, `${round(value, unit === 'ms' || unit === 'x' ? 2 : 0)} ${unit}`]);
  process.stdout.write(`  ${label}: ${round(value, 2)} ${unit}\n`);
}

function peakRss(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A package with one handler file, made on the fly. */
async function handlerPackage(source: string): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-bench-fn-'));
  writeFileSync(path.join(dir, 'handler.py'), source);
  writeFileSync(path.join(dir, 'requirements.txt'), '');
  return tarGzOf(dir);
}

async function waitWarm(platform: TestPlatform, names: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const workers = (await platform.json('GET', '/workers')).body as Array<{ warm: Array<{ function: string }> }>;
    const warm = new Set(workers.flatMap((w) => w.warm.map((x) => x.function)));
    if (names.every((n) => warm.has(n))) return;
    if (Date.now() > deadline) throw new Error(`not warm within ${timeoutMs} ms: ${names.filter((n) => !warm.has(n)).length} functions`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function waitStem(platform: TestPlatform, runtime: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const workers = (await platform.json('GET', '/workers')).body as Array<{ stems: Array<{ runtime: string }> }>;
    if (workers.some((w) => w.stems.some((s) => s.runtime === runtime))) return;
    if (Date.now() > deadline) throw new Error(`no stem cell of ${runtime} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  await ensureRuntimeImages({ say: (line) => process.stdout.write(`${line}\n`) });
  const platform = await TestPlatform.start({
    env: { FAAS_LOG_LEVEL: 'warn', FAAS_WORKER_CAPACITY: '128', FAAS_KEEP_ALIVE_MS: '600000', FAAS_PRELOAD: 'runtime', FAAS_PREWARM: '1', FAAS_CALL_TIMEOUT_MS: '30000', FAAS_WAIT_TIMEOUT_MS: '60000' },
  });
  const base = new URL(platform.url);
  const invoke = (funcName: string, params: unknown, wait: boolean) => requestJson(base, 'POST', `/invokeFunction${wait ? '?wait=true' : ''}`, { funcName, params });
  const timeCall = async (funcName: string, params: unknown = {}) => {
    const t = process.hrtime.bigint();
    const { body } = await invoke(funcName, params, true);
    if (body?.status !== 'DONE') throw new Error(`${funcName} ended ${body?.status}: ${body?.error ?? JSON.stringify(body)}`);
    return since(t);
  };
  try {
    process.stdout.write('floors\n');
    record('exec_floor_ms', median(await execFloor(docker, 'pythonruntime', 15)), 'docker exec (raw, median of 15)');
    record('stdio_floor_ms', median(await stdioFloor(docker, 'pythonruntime', 2000)), 'stdin/stdout JSON line round trip (raw, median of 2000)');
    record('http_floor_ms', median(await httpFloor(base, 2000)), 'empty HTTP round trip to the api (median of 2000)');

    await platform.json('POST', '/registerRuntime', { image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 test.py' });
    await platform.json('POST', '/registerRuntime', { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 /opt/faas/handler.py', mode: 'handler' });
    const noop = await handlerPackage('def handle(params):\n    return params\n');

    process.stdout.write('seed approach and cold calls\n');
    await platform.upload('pythonruntime', 'dice', await tarGzOf(DICE));
    await timeCall('dice', { roll: '4d6' }); // builds the function image
    const seed = [];
    for (let i = 0; i < 7; i++) seed.push(await timeCall('dice', { roll: '4d6' }));
    record('seed_per_call_ms', median(seed), 'seed approach: a new container per call, process mode (median of 7)');

    await uploadWithFields(platform, 'python', 'cold', noop, { preload: 'none' });
    await timeCall('cold'); // builds the function image
    // The floor and the cold call are measured in turn, so that both see the same machine.
    const cold = [];
    const createStart = [];
    for (let i = 0; i < 9; i++) {
      createStart.push(...(await createStartFloor(docker, 'pythonruntime', 1)));
      cold.push(await timeCall('cold'));
    }
    record('cold_floor_ms', median(createStart), 'docker create+start (raw, median of 9, alternating with the cold calls)');
    record('cold_ms', median(cold), 'cold call, handler mode, image present, nothing warm (median of 9)');
    record('cold_ratio', median(cold) / median(createStart), 'cold call / create+start floor', 'x');

    process.stdout.write('pre-warmed and warm calls\n');
    const stemmed = [];
    for (let i = 0; i < 5; i++) {
      await waitStem(platform, 'python', 60_000);
      await uploadWithFields(platform, 'python', `stem${i}`, await handlerPackage(`def handle(params):\n    return ${i}\n`), {});
      await new Promise((r) => setTimeout(r, 2000)); // its image (dependencies) is made at registration
      stemmed.push(await timeCall(`stem${i}`));
    }
    record('prewarmed_first_ms', median(stemmed), 'first call, runtime policy: code put into a started stem cell (median of 5)');
    const prewarmed = [];
    for (let i = 0; i < 5; i++) {
      await uploadWithFields(platform, 'python', `pre${i}`, noop, { preload: 'function' });
      await waitWarm(platform, [`pre${i}`], 60_000);
      prewarmed.push(await timeCall(`pre${i}`));
    }
    record('prewarmed_function_first_ms', median(prewarmed), 'first call, function policy: container warmed at registration (median of 5)');

    await uploadWithFields(platform, 'python', 'noop', noop, { preload: 'function' });
    await waitWarm(platform, ['noop'], 60_000);
    for (let i = 0; i < 300; i++) await timeCall('noop', { i }); // warm-up of the node processes
    const warm = (await runConcurrent(3000, 1, async (i) => void (await timeCall('noop', { i })))).durations;
    record('warm_sync_p50_ms', percentile(warm, 50), 'warm sync call p50 (3000 calls, POST /invokeFunction?wait=true)');
    record('warm_sync_p90_ms', percentile(warm, 90), 'warm sync call p90');
    record('warm_sync_p99_ms', percentile(warm, 99), 'warm sync call p99');

    process.stdout.write('throughput\n');
    for (const concurrency of [1, 16, 64]) {
      const count = concurrency === 1 ? 2000 : 6000;
      await runConcurrent(500, concurrency, async (i) => void (await timeCall('noop', { i })));
      const { wallMs } = await runConcurrent(count, concurrency, async (i) => void (await timeCall('noop', { i })));
      record(`throughput_c${concurrency}_per_s`, (count / wallMs) * 1000, `warm sync calls/s at concurrency ${concurrency} (${count} calls)`, '/s');
    }

    process.stdout.write('10,000 asynchronous calls\n');
    const accepted = new Set<number>();
    const t0 = process.hrtime.bigint();
    await runConcurrent(10_000, 64, async (i) => {
      const { status, body } = await invoke('noop', { i }, false);
      if (status === 202) accepted.add(body.callNum);
    });
    const acceptMs = since(t0);
    record('async10k_accept_per_s', (accepted.size / acceptMs) * 1000, 'async calls accepted/s (10,000, 64 clients)', '/s');
    const deadline = Date.now() + 180_000;
    let final = 0;
    const first = Math.min(...accepted);
    while (Date.now() < deadline) {
      const calls = (await platform.json('GET', '/calls')).body as Record<string, { callNum: number; status: string }>;
      final = Object.values(calls).filter((c) => accepted.has(c.callNum) && ['DONE', 'ERROR', 'TIMEOUT'].includes(c.status)).length;
      if (final === accepted.size) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    record('async10k_all_final_ms', since(t0), 'time until all 10,000 are final');
    record('async10k_accepted', accepted.size, 'async calls accepted', 'calls');
    record('async10k_lost', accepted.size - final + (10_000 - accepted.size), 'async calls lost (not accepted or not final)', 'calls');
    void first;

    process.stdout.write('100 distinct functions\n');
    const names = Array.from({ length: 100 }, (_, i) => `d${String(i).padStart(3, '0')}`);
    const tReg = process.hrtime.bigint();
    for (const name of names) await uploadWithFields(platform, 'python', name, noop, { preload: 'function' });
    await waitWarm(platform, names, 240_000);
    record('distinct100_warmup_ms', since(tReg), 'registering 100 functions until all are warm');
    await runConcurrent(500, 16, async (i) => void (await timeCall(names[i % 100]!, { i })));
    const { wallMs } = await runConcurrent(4000, 16, async (i) => void (await timeCall(names[i % 100]!, { i })));
    record('distinct100_per_s', (4000 / wallMs) * 1000, 'calls/s across 100 distinct functions, round-robin, 16 clients', '/s');

    process.stdout.write('memory\n');
    for (const [name, child] of platform.procs) record(`rss_${name === 'db' ? 'db_service' : name}_mb`, peakRss(child.pid!), `peak RSS ${name}`, 'MB');
    const miniworkers = childPids(platform.procs.get('worker')!.pid!).map(peakRss);
    record('rss_miniworker_max_mb', Math.max(0, ...miniworkers), `peak RSS of one miniworker (max of ${miniworkers.length})`, 'MB');
    record('miniworkers', miniworkers.length, 'miniworkers at the end', '');
    const warmContainers = (await platform.containers(['io.faas.role=warm'])).length;
    record('warm_containers', warmContainers, 'warm containers at the end', '');
  } finally {
    await platform.stop();
    const floors = await docker.listContainers({ all: true, filters: { label: ['io.faas.platform=bench-floor'] } });
    for (const c of floors) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
  results.bench_seconds = round((Date.now() - started) / 1000, 1);
  writeFileSync(path.join(ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const width = Math.max(...rows.map(([l]) => l.length));
  process.stdout.write(`\n${'measure'.padEnd(width)}  value\n${'-'.repeat(width)}  -----\n`);
  for (const [label, value] of rows) process.stdout.write(`${label.padEnd(width)}  ${value}\n`);
  process.stdout.write(`\n${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}; ${results.bench_seconds} s; bench/results.json written\n`);
}

async function uploadWithFields(platform: TestPlatform, runtime: string, name: string, data: Buffer, fields: Record<string, string>): Promise<void> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('module', new Blob([data]), 'package.tar.gz');
  const response = await fetch(`${platform.url}/registerFunction/${runtime}/${name}`, { method: 'POST', body: form });
  if (!response.ok) throw new Error(`registering ${name}: ${response.status} ${await response.text()}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
