/**
 * `npm run bench`: starts the real platform from this checkout and measures, in one run, Docker's
 * own floors beside the platform's cold, pre-warmed and warm calls, throughput with the CPU each
 * process spends per call, an outside load generator, 10,000 async calls and 100 distinct
 * functions with the platform's memory per warm container. Prints tables and writes
 * bench/results.json.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { ensureRuntimeImages } from '../cli/actions/images';
import { DICE, tarGzOf } from '../test/helpers/archives';
import { TestPlatform } from '../test/helpers/platform';
import { cpuDelta, cpuPerCall, formatCpuTable, takeCpuSnapshot, type CpuScope } from './cpu';
import { createStartFloor, execFloor, httpFloor, stdioFloor } from './floors';
import { handlerPackage, uploadWithFields, waitFunctionImage, waitStem, waitWarm, workers } from './functions';
import { requestJson } from './http';
import { memoryPerWarmContainer, warmContainersRss } from './memory';
import { autocannonInvoke } from './outside-load';
import { descendantPids, isNodeProcess, peakRssMb, threadCount } from './procfs';
import { median, percentile, round, runConcurrent, since } from './stats';
import { readEvents } from '../cli/sse';

const ROOT = path.resolve(__dirname, '..', '..');
/** The warm containers of the memory row: BENCH_WARM_CONTAINERS, default 500. */
const WARM_CONTAINERS_ROW = Number(process.env.BENCH_WARM_CONTAINERS ?? 500);
const docker = new Docker();
const rows: Array<[string, string]> = [];
/** Numbers, and a few objects (CPU per call by process) keyed by what they break down. */
const results: Record<string, number | Record<string, number>> = {};
const tables: string[] = [];
const notes: string[] = [];

function record(key: string, value: number, label: string, unit = 'ms'): void {
  results[key] = round(value, 3);
  rows.push([label, `${round(value, unit === 'ms' || unit === 'x' ? 2 : 0)} ${unit}`]);
  process.stdout.write(`  ${label}: ${round(value, 2)} ${unit}\n`);
}

function cpuScope(platform: TestPlatform): CpuScope {
  return { api: platform.procs.get('api')?.pid, dbService: platform.procs.get('db')?.pid, worker: platform.procs.get('worker')?.pid };
}

/**
 * Runs `count` warm calls from `concurrency` clients with a CPU snapshot on each side. The
 * platform's containers are listed before the first snapshot and after the second, so that the
 * listings cost dockerd nothing inside the window and a container that came or went in between
 * is still known as the platform's.
 */
async function measuredThroughput(platform: TestPlatform, concurrency: number, count: number, call: (i: number) => Promise<void>) {
  const containerIds = new Set((await platform.containers()).map((c) => c.Id));
  const before = takeCpuSnapshot(cpuScope(platform));
  const { wallMs, durations } = await runConcurrent(count, concurrency, call);
  const after = takeCpuSnapshot(cpuScope(platform));
  for (const c of await platform.containers()) containerIds.add(c.Id);
  return { wallMs, durations, cpu: cpuDelta(before, after, containerIds) };
}

/**
 * Miniworkers (processes under the worker, or the worker's threads, one per miniworker thread
 * beside its own dozen) and warm containers on every worker: what grows when load does.
 */
async function poolSize(platform: TestPlatform): Promise<{ miniworkers: number; warm: number }> {
  const worker = platform.procs.get('worker')?.pid;
  const miniworkers = worker === undefined ? 0 : descendantPids(worker).filter((pid) => isNodeProcess(pid)).length + threadCount(worker);
  const warm = (await workers(platform)).reduce((sum, w) => sum + w.warm.reduce((n, f) => n + f.containers, 0), 0);
  return { miniworkers, warm };
}

/**
 * Rounds of 500 calls until one starts no miniworker and no container (at most `maxRounds`), so
 * that the measured window sees the pool this load keeps, not the CPU of its growth.
 */
async function warmUp(platform: TestPlatform, concurrency: number, call: (i: number) => Promise<void>, maxRounds = 6): Promise<string> {
  let size = await poolSize(platform);
  for (let round = 1; ; round++) {
    await runConcurrent(500, concurrency, call);
    const now = await poolSize(platform);
    const grew = now.miniworkers > size.miniworkers || now.warm > size.warm;
    size = now;
    if (!grew || round >= maxRounds) {
      return `warm-up: ${round} rounds of 500 calls${grew ? ', the pool still growing' : ''}; ${now.miniworkers} miniworker processes and worker threads, ${now.warm} warm containers`;
    }
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

    // Its own environment makes it a function no stem cell may take: each call starts a container.
    await uploadWithFields(platform, 'python', 'cold', noop, { preload: 'none', env: '{"BENCH_COLD":"1"}' });
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
      const { version } = await uploadWithFields(platform, 'python', `stem${i}`, await handlerPackage(`def handle(params):\n    return ${i}\n`), {});
      // Its image (dependencies) is made at registration: the first call comes once it is there.
      await waitFunctionImage(platform, version, 120_000);
      await waitStem(platform, 'python', 60_000);
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
      const call = async (i: number) => void (await timeCall('noop', { i }));
      process.stdout.write(`  ${await warmUp(platform, concurrency, call)}\n`);
      const { wallMs, durations, cpu } = await measuredThroughput(platform, concurrency, count, call);
      record(`throughput_c${concurrency}_per_s`, (count / wallMs) * 1000, `warm sync calls/s at concurrency ${concurrency} (${count} calls)`, '/s');
      if (concurrency === 1) continue;
      record(`throughput_c${concurrency}_p50_ms`, percentile(durations, 50), `client p50 at concurrency ${concurrency}`);
      record(`throughput_c${concurrency}_p99_ms`, percentile(durations, 99), `client p99 at concurrency ${concurrency}`);
      // The figures at 64 clients carry the plain names; those at 16 end in _c16.
      const suffix = concurrency === 64 ? '' : `_c${concurrency}`;
      const perCall = cpuPerCall(cpu, count);
      record(`cpu_us_per_call${suffix}`, perCall.platformUs, `platform CPU per warm call at ${concurrency} clients, all its processes`, 'µs');
      results[`cpu_us_per_call_by_process${suffix}`] = perCall.byRole;
      record(`cpu_us_per_call_bench_client${suffix}`, perCall.benchClientUs, `bench client CPU per warm call at ${concurrency} clients (not in the platform's)`, 'µs');
      const table = formatCpuTable(`CPU per warm call at ${concurrency} clients`, cpu, count);
      tables.push(table);
      process.stdout.write(`${table}\n`);
    }

    process.stdout.write('events on the warm path\n');
    {
      // Alternating pairs at 16 clients: no subscriber, then one reading every event (call starts
      // included, which workers send only while someone watches).
      const call = async (i: number) => void (await timeCall('noop', { i }));
      const without: { perS: number; cpuUs: number }[] = [];
      const withOne: { perS: number; cpuUs: number; events: number }[] = [];
      for (let pair = 0; pair < 2; pair++) {
        const count = 3000;
        const plain = await measuredThroughput(platform, 16, count, call);
        without.push({ perS: (count / plain.wallMs) * 1000, cpuUs: cpuPerCall(plain.cpu, count).platformUs });
        const abort = new AbortController();
        let events = 0;
        let open = false;
        const reading = (async () => {
          try {
            for await (const event of readEvents(`${platform.url}/v1/events`, { signal: abort.signal, onOpen: () => (open = true) })) if (event.event.startsWith('call.')) events += 1;
          } catch {
            /* aborted */
          }
        })();
        while (!open) await new Promise((r) => setTimeout(r, 10));
        const watched = await measuredThroughput(platform, 16, count, call);
        // The last events are on their way when the last answer came.
        for (let i = 0; i < 100 && events < count * 3; i++) await new Promise((r) => setTimeout(r, 20));
        abort.abort();
        await reading;
        withOne.push({ perS: (count / watched.wallMs) * 1000, cpuUs: cpuPerCall(watched.cpu, count).platformUs, events });
      }
      const med = (xs: number[]) => median(xs);
      record('events_none_c16_per_s', med(without.map((r) => r.perS)), 'warm sync calls/s at 16 clients, no event subscriber (median of 2 × 3000, alternating with the next)', '/s');
      record('events_one_c16_per_s', med(withOne.map((r) => r.perS)), 'warm sync calls/s at 16 clients, one subscriber reading every event', '/s');
      record('events_none_cpu_us_per_call', med(without.map((r) => r.cpuUs)), 'platform CPU per warm call at 16 clients, no subscriber', 'µs');
      record('events_one_cpu_us_per_call', med(withOne.map((r) => r.cpuUs)), 'platform CPU per warm call at 16 clients, one subscriber', 'µs');
      record('events_received_per_call', med(withOne.map((r) => r.events / 3000)), 'call events the subscriber got per call (3: accepted, started, ended)', '');
    }

    process.stdout.write('the function as an HTTP endpoint\n');
    {
      // Alternating pairs at 16 clients: the call API (a CALL object back), then the function's endpoint
      // (its own answer: here its params, echoed, as JSON).
      const viaApi = async (i: number) => void (await timeCall('noop', { i }));
      const viaEndpoint = async (i: number) => {
        const { status, body } = await requestJson(base, 'POST', '/function/noop', { i });
        if (status !== 200 || body?.method !== 'POST') throw new Error(`the endpoint answered ${status}: ${JSON.stringify(body).slice(0, 200)}`);
      };
      const api: { perS: number; cpuUs: number }[] = [];
      const endpoint: { perS: number; cpuUs: number }[] = [];
      for (let pair = 0; pair < 2; pair++) {
        const count = 3000;
        const a = await measuredThroughput(platform, 16, count, viaApi);
        api.push({ perS: (count / a.wallMs) * 1000, cpuUs: cpuPerCall(a.cpu, count).platformUs });
        const e = await measuredThroughput(platform, 16, count, viaEndpoint);
        endpoint.push({ perS: (count / e.wallMs) * 1000, cpuUs: cpuPerCall(e.cpu, count).platformUs });
      }
      record('endpoint_api_c16_per_s', median(api.map((r) => r.perS)), 'warm sync calls/s at 16 clients through POST /invokeFunction?wait=true (median of 2 × 3000, alternating with the next)', '/s');
      record('endpoint_c16_per_s', median(endpoint.map((r) => r.perS)), 'warm calls/s at 16 clients through POST /function/noop (the HTTP endpoint)', '/s');
      record('endpoint_api_cpu_us_per_call', median(api.map((r) => r.cpuUs)), 'platform CPU per warm call at 16 clients, call API', 'µs');
      record('endpoint_cpu_us_per_call', median(endpoint.map((r) => r.cpuUs)), 'platform CPU per warm call at 16 clients, HTTP endpoint', 'µs');
    }

    process.stdout.write('outside load generator\n');
    const outside = await autocannonInvoke(base, 'noop', 64, 10);
    if ('skipped' in outside) {
      notes.push(`outside load generator: ${outside.skipped}`);
      process.stdout.write(`  ${outside.skipped}\n`);
    } else {
      const run = outside.ran;
      record('autocannon_c64_per_s', run.perSecond, `autocannon, ${run.connections} connections, ${run.durationS} s: warm sync calls/s (${run.requests} calls, all DONE)`, '/s');
      record('autocannon_c64_p50_ms', run.p50Ms, 'autocannon p50');
      record('autocannon_c64_p99_ms', run.p99Ms, 'autocannon p99');
    }

    process.stdout.write('10,000 asynchronous calls\n');
    const accepted = new Set<number>();
    const acceptIds = new Set((await platform.containers()).map((c) => c.Id));
    const acceptBefore = takeCpuSnapshot(cpuScope(platform));
    const t0 = process.hrtime.bigint();
    await runConcurrent(10_000, 64, async (i) => {
      const { status, body } = await invoke('noop', { i }, false);
      if (status === 202) accepted.add(body.callNum);
    });
    const acceptMs = since(t0);
    // The accept window also runs the calls accepted so far: its CPU is the accepts' and those calls'.
    const acceptCpu = cpuDelta(acceptBefore, takeCpuSnapshot(cpuScope(platform)), acceptIds);
    results.cpu_us_per_async_accept_by_process = cpuPerCall(acceptCpu, 10_000).byRole;
    tables.push(formatCpuTable('CPU per async call accepted, over the accept window (the calls run meanwhile included)', acceptCpu, 10_000));
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
    const distinct = await measuredThroughput(platform, 16, 4000, async (i) => void (await timeCall(names[i % 100]!, { i })));
    record('distinct100_per_s', (4000 / distinct.wallMs) * 1000, 'calls/s across 100 distinct functions, round-robin, 16 clients', '/s');
    const distinctPerCall = cpuPerCall(distinct.cpu, 4000);
    record('cpu_us_per_call_distinct100', distinctPerCall.platformUs, 'platform CPU per call across 100 distinct functions', 'µs');
    results.cpu_us_per_call_by_process_distinct100 = distinctPerCall.byRole;
    tables.push(formatCpuTable('CPU per call across 100 distinct functions, 16 clients', distinct.cpu, 4000));
    // Right after, while the most containers are warm: the worker side's memory now, not its peak.
    const perWarm = await memoryPerWarmContainer(platform);
    record('mem_per_warm_container_mb', perWarm.perContainerRssMb, `platform memory per warm container: (worker + ${perWarm.miniworkers} miniworkers) RSS / ${perWarm.warmContainers} warm containers`, 'MB');
    record('mem_per_warm_container_pss_mb', perWarm.perContainerPssMb, 'the same counted as Pss (pages shared between the processes divided among them)', 'MB');

    process.stdout.write('memory\n');
    for (const [name, child] of platform.procs) record(`rss_${name === 'db' ? 'db_service' : name}_mb`, peakRssMb(child.pid!), `peak RSS ${name}`, 'MB');
    const miniworkers = descendantPids(platform.procs.get('worker')!.pid!)
      .filter((pid) => isNodeProcess(pid))
      .map(peakRssMb);
    record('rss_miniworker_max_mb', Math.max(0, ...miniworkers), `peak RSS of one miniworker process (max of ${miniworkers.length}; 0 when miniworkers are threads of the worker)`, 'MB');
    record('miniworkers', miniworkers.length, 'miniworker processes at the end', '');
    record('worker_threads', threadCount(platform.procs.get('worker')!.pid!), 'threads of the worker process at the end (its miniworker threads among them)', '');
    const warmContainers = (await platform.containers(['io.faas.role=warm'])).length;
    record('warm_containers', warmContainers, 'warm containers at the end', '');
  } finally {
    await platform.stop();
    const floors = await docker.listContainers({ all: true, filters: { label: ['io.faas.platform=bench-floor'] } });
    for (const c of floors) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }

  // Last, on a platform of its own: 500 containers kept warm on one node.
  process.stdout.write('500 warm containers on one node\n');
  try {
    const five = await warmContainersRss(WARM_CONTAINERS_ROW);
    record('warm_containers_500_rss_mb', five.workerRssMb + five.miniworkersRssMb, `worker side RSS with ${five.warmContainers} warm containers (${five.workerThreads} worker threads, ${five.miniworkers} miniworker processes; warm in ${Math.round(five.warmupMs / 1000)} s)`, 'MB');
    record('warm_containers_500_per_container_mb', five.perContainerRssMb, 'the same per warm container', 'MB');
    record('warm_containers_500_per_container_pss_mb', five.perContainerPssMb, 'the same counted as Pss', 'MB');
  } catch (err) {
    notes.push(`500 warm containers: not measured: ${err instanceof Error ? err.message : String(err)}`);
  }

  results.bench_seconds = round((Date.now() - started) / 1000, 1);
  writeFileSync(path.join(ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const width = Math.max(...rows.map(([l]) => l.length));
  process.stdout.write(`\n${'measure'.padEnd(width)}  value\n${'-'.repeat(width)}  -----\n`);
  for (const [label, value] of rows) process.stdout.write(`${label.padEnd(width)}  ${value}\n`);
  for (const table of tables) process.stdout.write(`\n${table}\n`);
  for (const note of notes) process.stdout.write(`\n${note}\n`);
  process.stdout.write(`\n${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}; ${results.bench_seconds} s; bench/results.json written\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
