import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as zmq from 'zeromq';
import { encodeRequest } from '../../protocol/envelope';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';

const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
const SLEEPY = 'import time\n\ndef handle(params):\n    time.sleep(params.get("s", 0))\n    return params\n';

async function handlerPackage(body: string): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-metrics-'));
  writeFileSync(path.join(dir, 'handler.py'), body);
  return tarGzOf(dir);
}

/** The value of one sample in Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (match && match[1] === name && (match[2] ?? '').split(',').filter(Boolean).sort().join(',') === wanted) return Number(match[3]);
  }
  return 0;
}

/** `promtool check metrics` on a scrape: its exit code and what it said. promtool must be installed (.ci/run does it). */
function promtool(text: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error) throw new Error(`promtool could not run (${run.error.message}): install Debian's prometheus package, as .ci/run does`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('GET /metrics on the real processes', () => {
  let platform: TestPlatform;
  const scrape = async () => (await fetch(`${platform.url}/metrics`)).text();

  beforeAll(async () => {
    // One slot: a second call waits in the api's queue until the first one ends.
    platform = await TestPlatform.start({ env: { FAAS_WORKER_CAPACITY: '1', FAAS_PRELOAD: 'function' } });
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    expect((await platform.upload('python', 'sleepy', await handlerPackage(SLEEPY))).status).toBe(201);
    // A first call, so that the container is warm and the fast call below runs in it at once.
    expect((await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'sleepy', params: {} })).body.status).toBe('DONE');
  });
  afterAll(async () => platform?.stop());

  test('a call that waited behind a busy worker: its wait is in faas_call_queue_seconds and the end-to-end time, not in the run time', async () => {
    const before = await scrape();
    const slow = (await platform.json('POST', '/invokeFunction', { funcName: 'sleepy', params: { s: 1 } })).body;
    expect(slow.status).toBe('PENDING');
    const fast = (await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'sleepy', params: { n: 1 } })).body;
    expect(fast.status).toBe('DONE');
    const slowDone = await platform.waitFinal(slow.callNum);
    expect(slowDone.status).toBe('DONE');
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);

    // The fast call could not be handed to the worker before the slow one had ended.
    const waitedSeconds = (Date.parse(slowDone.endedAt) - Date.parse(fast.createdAt)) / 1000;
    expect(waitedSeconds).toBeGreaterThan(0.3);
    expect(fast.durationMs / 1000).toBeLessThan(waitedSeconds);
    if (fast.dispatchedAt !== undefined) {
      expect(Date.parse(fast.dispatchedAt)).toBeGreaterThanOrEqual(Date.parse(slowDone.endedAt));
    }

    const fn = { function: 'sleepy' };
    expect(delta('faas_call_queue_seconds_count', fn)).toBe(2);
    // Both waits are in the queue histogram: the fast call's at least what it waited.
    expect(delta('faas_call_queue_seconds_sum', fn)).toBeGreaterThanOrEqual(waitedSeconds - 1e-6);
    // The run-time histogram holds exactly the two run times, which leave the wait out.
    expect(delta('faas_call_duration_seconds_count', fn)).toBe(2);
    expect(delta('faas_call_duration_seconds_sum', fn)).toBeCloseTo((slowDone.durationMs + fast.durationMs) / 1000, 6);
    // End to end covers the wait and the runs.
    const done = { function: 'sleepy', status: 'DONE' };
    expect(delta('faas_call_end_to_end_seconds_count', done)).toBe(2);
    expect(delta('faas_call_end_to_end_seconds_sum', done)).toBeGreaterThanOrEqual(waitedSeconds + (slowDone.durationMs + fast.durationMs) / 1000 - 1e-6);
    expect(delta('faas_calls_total', done)).toBe(2);
    expect(delta('faas_invocations_total', fn)).toBe(2);
  });

  test('promtool check metrics passes on a scrape; the Node.js process metrics have their standard names', async () => {
    const text = await scrape();
    const check = promtool(text);
    expect(check).toEqual({ status: 0, output: '' });
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(text).toMatch(new RegExp(`^${name} `, 'm'));
    }
    expect(text).not.toMatch(/^faas_api_/m);
    for (const [name, type] of [
      ['faas_call_queue_seconds', 'histogram'],
      ['faas_call_end_to_end_seconds', 'histogram'],
      ['faas_call_duration_seconds', 'histogram'],
      ['faas_calls_total', 'counter'],
      ['faas_queue_depth', 'gauge'],
    ]) {
      expect(text).toMatch(new RegExp(`^# TYPE ${name} ${type}$`, 'm'));
      expect(text).toMatch(new RegExp(`^# HELP ${name} \\S`, 'm'));
    }
  });

  test('callDone frames naming functions nobody registered add no series', async () => {
    const seriesBefore = (await scrape()).split('\n').filter((line) => line.startsWith('faas_')).length;
    // A text routing id, as workers have: the api keeps routing ids as strings.
    const rogue = new zmq.Dealer({ linger: 0, routingId: `rogue-${process.pid}` });
    rogue.connect(platform.env.FAAS_WORKER_ENDPOINT!);
    try {
      const now = new Date().toISOString();
      for (let n = 0; n < 200; n++) {
        const call = { callNum: 1_000_000_000 + n, funcName: `forged-${n}`, params: {}, status: 'DONE', createdAt: now, endedAt: now, durationMs: 1, coldStart: true };
        await rogue.send(encodeRequest(`f${n}`, 'callDone', { call }));
      }
      // The api handles one peer's frames in order: its answer to this heartbeat (from a peer it does
      // not know: reregister) comes after it has handled every callDone above.
      await rogue.send(encodeRequest('beat', 'heartbeat', { load: 0, queued: 0 }));
      const [answer] = await Promise.race([
        rogue.receive(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer to the heartbeat within 15 s')), 15_000)),
      ]);
      expect(JSON.parse(answer!.toString()).msgType).toBe('reregister');
    } finally {
      rogue.close();
    }
    const text = await scrape();
    expect(text).not.toMatch(/forged-/);
    // At most one set of series under the fixed label for unregistered functions, not 200 sets.
    expect(text.split('\n').filter((line) => line.startsWith('faas_')).length - seriesBefore).toBeLessThan(60);
    expect(promtool(text).status).toBe(0);
  });

  test('a removed function loses its series', async () => {
    expect(await scrape()).toMatch(/function="sleepy"/);
    expect((await platform.json('DELETE', '/v1/functions/sleepy')).status).toBe(204);
    // The removal is done when the api answers.
    const text = await scrape();
    expect(text).not.toMatch(/function="sleepy"/);
    expect(sample(text, 'faas_workers_connected')).toBe(1);
  });
});
