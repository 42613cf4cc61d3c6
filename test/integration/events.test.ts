import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../api/auth';
import { readEvents, StreamRefused, type StreamEvent } from '../../cli/sse';
import { PROJECT_ROOT } from '../../cli/actions/images';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * The live events (GET /v1/events) and followed logs (GET /v1/calls/:n/logs?follow=true) of
 * docs/EVENTS.md, against the real processes.
 */
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
const PYPROC = { name: 'pyproc', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py' };

async function packageOf(files: Record<string, string>): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-events-fn-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return tarGzOf(dir);
}

/** Collects a stream's events in the background until stopped or the stream ends. */
class Collector {
  readonly events: StreamEvent[] = [];
  readonly done: Promise<void>;
  private readonly abort = new AbortController();
  error?: unknown;
  isOpen = false;

  constructor(url: string, headers: Record<string, string> = {}) {
    this.done = (async () => {
      try {
        for await (const event of readEvents(url, { headers, signal: this.abort.signal, onOpen: () => (this.isOpen = true) })) this.events.push(event);
      } catch (err) {
        if (!this.abort.signal.aborted) this.error = err;
      }
    })();
  }

  data(type?: string): any[] {
    return this.events.filter((e) => type === undefined || e.event === type).map((e) => JSON.parse(e.data));
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

/** A stream's first answer: the status, or the events being collected. */
async function opened(collector: Collector): Promise<Collector> {
  await until(async () => collector.isOpen || collector.error !== undefined, (ok) => ok, 10_000, 'the stream open');
  if (collector.error) throw collector.error;
  return collector;
}

describe('live events and followed logs', () => {
  let platform: TestPlatform;
  const open: Collector[] = [];
  const collect = (query = '', headers: Record<string, string> = {}) => {
    const collector = new Collector(`${platform.url}/v1/events${query}`, headers);
    open.push(collector);
    return collector;
  };

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_EVENTS_MAX_SUBSCRIBERS: '3', FAAS_WORKER_CAPACITY: '3' } });
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    expect((await platform.json('POST', '/registerRuntime', PYPROC)).status).toBe(201);
    const echo = await packageOf({ 'handler.py': 'def handle(params):\n    return params\n' });
    expect((await platform.upload('python', 'echo', echo, 'p.tar.gz')).status).toBe(201);
  }, 120_000);

  /** The api's count of open streams, from its metrics. */
  const streamsOpen = async (): Promise<number> => {
    const text = await (await fetch(`${platform.url}/metrics`)).text();
    const counts = [...text.matchAll(/^faas_event_streams\{kind="(?:events|logs)"\} (\d+)$/gm)].map((m) => Number(m[1]));
    if (counts.length !== 2) throw new Error(`faas_event_streams not in the metrics:\n${text.slice(0, 500)}`);
    return counts[0]! + counts[1]!;
  };

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.stop()));
    // The next test may open as many streams as the cap: wait until the api has seen these close.
    await until(streamsOpen, (n) => n === 0, 10_000, 'the closed streams gone from the api');
  });

  afterAll(async () => {
    await platform?.stop();
  });

  test('each call is accepted, started and ended, in that order, with its node, duration and cold start', async () => {
    const stream = await opened(collect('?types=call'));
    const calls = await Promise.all(Array.from({ length: 12 }, (_, i) => platform.json('POST', '/invokeFunction?wait=true', { funcName: 'echo', params: { i } })));
    const nums = calls.map((c) => {
      expect(c.status).toBe(200);
      return c.body.callNum as number;
    });
    await until(async () => stream.data('call.ended').filter((e) => nums.includes(e.callNum)).length, (n) => n === nums.length, 30_000, 'every call ended on the stream');
    for (const n of nums) {
      const ofCall = stream.events.filter((e) => JSON.parse(e.data).callNum === n);
      expect(ofCall.map((e) => e.event)).toEqual(['call.accepted', 'call.started', 'call.ended']);
      const ended = JSON.parse(ofCall[2]!.data);
      expect(ended).toMatchObject({ callNum: n, funcName: 'echo', status: 'DONE', node: `node-${platform.label}` });
      expect(typeof ended.durationMs).toBe('number');
      expect(typeof ended.coldStart).toBe('boolean');
      expect(Date.parse(ended.at)).toBeGreaterThan(0);
    }
    // Ids increase along the stream.
    const seqs = stream.events.filter((e) => e.id).map((e) => Number(e.id!.split('-')[1]));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  }, 60_000);

  test('a stream resumed with Last-Event-ID gets what came after that event; an unknown id gets a reset first', async () => {
    const first = await opened(collect('?types=call'));
    const nums: number[] = [];
    for (let i = 0; i < 4; i++) nums.push((await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'echo', params: { r: i } })).body.callNum);
    await until(async () => first.data('call.ended').filter((e) => nums.includes(e.callNum)).length, (n) => n === 4, 30_000, 'the calls ended on the first stream');
    const withIds = first.events.filter((e) => e.id);
    const cut = withIds[3]!;
    const resumed = await opened(collect('?types=call', { 'last-event-id': cut.id! }));
    const expected = withIds.slice(4).map((e) => e.id);
    await until(async () => resumed.events.filter((e) => e.id).length, (n) => n >= expected.length, 10_000, 'the kept events replayed');
    expect(resumed.events.filter((e) => e.id).slice(0, expected.length).map((e) => e.id)).toEqual(expected);

    const stale = await opened(collect('', { 'last-event-id': 'ffffffff-1' }));
    expect(stale.events[0]!.event).toBe('reset');
    expect(JSON.parse(stale.events[0]!.data).reason).toMatch(/restarted/);
  }, 60_000);

  test('filters: by type family and by function; bad filters are a 400', async () => {
    const registry = await opened(collect('?types=function,runtime'));
    const ofEcho = await opened(collect('?function=echo2'));
    const pkg = await packageOf({ 'handler.py': 'def handle(params):\n    return 2\n' });
    expect((await platform.upload('python', 'echo2', pkg, 'p.tar.gz')).status).toBe(201);
    const call = await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'echo2', params: {} });
    expect(call.status).toBe(200);
    await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'echo', params: {} });
    expect((await platform.json('DELETE', '/v1/functions/echo2')).status).toBe(204);
    expect((await platform.json('POST', '/v1/runtimes', { ...PYTHON, name: 'spare' })).status).toBe(201);
    expect((await platform.json('DELETE', '/v1/runtimes/spare')).status).toBe(204);
    await until(async () => registry.events.map((e) => e.event), (types) => types.includes('runtime.removed'), 10_000, 'the registry events');
    expect(registry.events.map((e) => e.event).filter((t) => t !== 'reset')).toEqual(['function.registered', 'function.removed', 'runtime.registered', 'runtime.removed']);
    expect(registry.data('function.registered')[0]).toMatchObject({ functionName: 'echo2', runtimeName: 'python' });
    await until(async () => ofEcho.events.map((e) => e.event), (types) => types.includes('function.removed'), 10_000, 'the events of echo2');
    expect(ofEcho.events.every((e) => JSON.parse(e.data).funcName === 'echo2' || JSON.parse(e.data).functionName === 'echo2')).toBe(true);
    expect(ofEcho.events.map((e) => e.event)).toEqual(['function.registered', 'call.accepted', 'call.started', 'call.ended', 'function.removed']);

    for (const query of ['?types=nope', '?function=Bad%20Name', '?other=1']) {
      const refused = await platform.json('GET', `/v1/events${query}`);
      expect(refused.status).toBe(400);
      expect(refused.body.error.code).toBe('BAD_REQUEST');
    }
  }, 60_000);

  test('past the subscriber cap a stream is refused 503 with Retry-After; a closed one frees its place', async () => {
    const streams = [await opened(collect()), await opened(collect()), await opened(collect())];
    const refused = await fetch(`${platform.url}/v1/events`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect((await refused.json()).error.code).toBe('TOO_MANY_SUBSCRIBERS');
    expect(await streamsOpen()).toBe(3);
    await streams[0]!.stop();
    const again = await until(
      async () => {
        const attempt = collect();
        try {
          return await opened(attempt);
        } catch (err) {
          await attempt.stop();
          if (err instanceof StreamRefused && err.status === 503) return undefined;
          throw err;
        }
      },
      (c) => c !== undefined,
      10_000,
      'a place free again',
    );
    expect(again!.isOpen).toBe(true);
  }, 30_000);

  test('a subscriber that does not read holds no call up: calls end while it stays connected', async () => {
    // A raw request whose answer is never read: its socket's buffers fill and stay full.
    const stuck = http.get(`${platform.url}/v1/events`);
    const response = await new Promise<http.IncomingMessage>((resolve) => stuck.once('response', resolve));
    expect(response.statusCode).toBe(200);
    response.pause();
    try {
      const calls = await Promise.all(Array.from({ length: 60 }, (_, i) => platform.json('POST', '/invokeFunction?wait=true', { funcName: 'echo', params: { pad: 'x'.repeat(2000), i } })));
      expect(calls.map((c) => c.body.status)).toEqual(calls.map(() => 'DONE'));
      expect((await platform.json('GET', '/health')).status).toBe(200);
    } finally {
      stuck.destroy();
    }
  }, 60_000);

  test('workers joining, draining and leaving are events', async () => {
    const stream = await opened(collect('?types=worker'));
    const node = `node-${platform.label}-b`;
    const extra = platform.spawnWorker('b');
    await until(async () => stream.data('worker.joined').map((e) => e.nodeId), (ids) => ids.includes(node), 30_000, 'worker b joined');
    await extra.stop({ signal: 'SIGTERM' });
    await until(async () => stream.data('worker.left').map((e) => e.nodeId), (ids) => ids.includes(node), 30_000, 'worker b left');
    const ofB = stream.events.filter((e) => JSON.parse(e.data).nodeId === node).map((e) => e.event);
    expect(ofB).toEqual(['worker.joined', 'worker.draining', 'worker.left']);
  }, 60_000);

  test('a process-mode call’s stdout and stderr are followed as they are written, and the stream ends with the call', async () => {
    const script = 'import sys, time\nfor i in range(8):\n    print(f"out {i}", flush=True)\n    print(f"err {i}", file=sys.stderr, flush=True)\n    time.sleep(0.25)\n';
    expect((await platform.upload('pyproc', 'ticker', await packageOf({ 'main.py': script }), 'p.tar.gz')).status).toBe(201);
    const accepted = await platform.json('POST', '/invokeFunction', { funcName: 'ticker', params: {} });
    expect(accepted.status).toBe(202);
    const n = accepted.body.callNum as number;
    const follow = new Collector(`${platform.url}/v1/calls/${n}/logs?follow=true`);
    open.push(follow);
    await follow.done;
    expect(follow.error).toBeUndefined();
    const final = await platform.waitFinal(n);
    expect(final.status).toBe('DONE');
    const end = follow.events.at(-1)!;
    expect(end.event).toBe('end');
    expect(JSON.parse(end.data)).toMatchObject({ status: 'DONE', truncated: false });
    // Several pieces while it ran, not one at its end; together, what it wrote.
    const stderr = follow.data('stderr').map((d) => d.text);
    expect(stderr.length).toBeGreaterThanOrEqual(2);
    expect(stderr.join('')).toBe(final.stderr);
    expect(follow.data('stdout').length).toBeGreaterThanOrEqual(2);
    expect(follow.data('stdout').map((d) => d.text).join('').trimEnd()).toBe(final.result);

    // Followed again after its end: everything at once, then end.
    const after = new Collector(`${platform.url}/v1/calls/${n}/logs?follow=true`);
    await after.done;
    expect(after.events.map((e) => e.event)).toEqual(['stderr', 'end']);
    expect(after.data('stderr')[0].text).toBe(final.stderr);
  }, 90_000);

  test('a handler-mode call’s stdout and stderr are followed live; two followers get the same', async () => {
    const source = 'import sys, time\n\ndef handle(params):\n    for i in range(8):\n        print(f"tick {i}", file=sys.stderr, flush=True)\n        print(f"out {i}")\n        time.sleep(0.25)\n    print("done printing")\n    return "ok"\n';
    expect((await platform.upload('python', 'slowlog', await packageOf({ 'handler.py': source }), 'p.tar.gz')).status).toBe(201);
    const accepted = await platform.json('POST', '/invokeFunction', { funcName: 'slowlog', params: {} });
    const n = accepted.body.callNum as number;
    const one = new Collector(`${platform.url}/v1/calls/${n}/logs?follow=true`);
    open.push(one);
    await until(async () => one.data('stderr').length, (k) => k >= 1, 30_000, 'the first piece of stderr');
    // The function's print()s come while it runs, not only with its result.
    await until(async () => one.data('stdout').length, (k) => k >= 1, 10_000, 'the first piece of stdout');
    expect(one.events.some((e) => e.event === 'end')).toBe(false);
    expect(one.data('stdout')[0].text).toMatch(/^out 0\n/);
    const two = new Collector(`${platform.url}/v1/calls/${n}/logs?follow=true`);
    open.push(two);
    await Promise.all([one.done, two.done]);
    const final = await platform.waitFinal(n);
    expect(final.status).toBe('DONE');
    for (const follower of [one, two]) {
      expect(follower.events.at(-1)!.event).toBe('end');
      expect(follower.data('stderr').map((d) => d.text).join('')).toBe(final.stderr);
      expect(follower.data('stdout').map((d) => d.text).join('')).toBe(final.stdout);
    }
    expect(one.data('stderr').length).toBeGreaterThanOrEqual(2);
    expect(one.data('stdout').length).toBeGreaterThanOrEqual(2);
    expect(final.stdout).toBe(`${[0, 1, 2, 3, 4, 5, 6, 7].map((i) => `out ${i}\n`).join('')}done printing\n`);

    // A call that does not exist is the platform's 404, not a stream.
    const missing = await platform.json('GET', '/v1/calls/99999999/logs?follow=true');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('CALL_NOT_FOUND');
  }, 90_000);
});

/** The faas command, with a config file of its own, reading its output as it comes. */
function runCli(url: string, args: string[]) {
  const env = { ...process.env, FAAS_CONFIG: path.join(mkdtempSync(path.join(os.tmpdir(), 'faas-events-cli-')), 'config.json') };
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'cli', 'main.js'), '--url', url, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out, exited };
}

describe('the faas command follows', () => {
  let platform: TestPlatform;

  beforeAll(async () => {
    platform = await TestPlatform.start();
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    const source = 'import sys, time\n\ndef handle(params):\n    for i in range(int(params.get("n", 0))):\n        print(f"tick {i}", file=sys.stderr, flush=True)\n        time.sleep(0.2)\n    print("bye")\n    if params.get("fail"):\n        raise ValueError("asked to fail")\n    return params.get("n", 0)\n';
    expect((await platform.upload('python', 'ticks', await packageOf({ 'handler.py': source }), 'p.tar.gz')).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await platform?.stop();
  });

  test('faas events --json prints one event per line as they happen; faas calls --watch prints the calls as they go', async () => {
    const events = runCli(platform.url, ['events', '--json', '--types', 'call']);
    const watch = runCli(platform.url, ['calls', '--watch', '--fn', 'ticks']);
    try {
      // Both commands are connected once a call made now shows in both; the next call is then seen whole.
      await until(
        async () => (await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'ticks', params: {} })).body.callNum as number,
        (n) => events.out.stdout.includes(`"callNum":${n}`) && watch.out.stdout.includes(`#${n} `),
        30_000,
        'a call seen by both commands',
      );
      const n = (await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'ticks', params: {} })).body.callNum as number;
      const ofCall = () => events.out.stdout.trim().split('\n').map((line) => JSON.parse(line)).filter((l) => l.callNum === n);
      await until(async () => ofCall().length, (k) => k === 3, 10_000, 'three events of the call');
      expect(ofCall().map((l) => l.type)).toEqual(['call.accepted', 'call.started', 'call.ended']);
      expect(ofCall()[0]).toMatchObject({ type: 'call.accepted', funcName: 'ticks', status: 'PENDING' });
      expect(ofCall()[0].id).toMatch(/^[0-9a-f]+-\d+$/);
      await until(async () => watch.out.stdout, (text) => new RegExp(`call\\.ended +#${n} ticks DONE`).test(text), 10_000, 'the end in calls --watch');
    } finally {
      events.child.kill('SIGINT');
      watch.child.kill('SIGINT');
    }
    expect(await events.exited).toBe(0);
    expect(await watch.exited).toBe(0);
  }, 60_000);

  test('faas logs -f prints what a running call writes until it ends, and fails with a call that fails', async () => {
    const accepted = await platform.json('POST', '/invokeFunction', { funcName: 'ticks', params: { n: 20 } });
    const logs = runCli(platform.url, ['logs', '-f', String(accepted.body.callNum)]);
    // Live: the first line is printed while the call still runs.
    await until(async () => logs.out.stderr, (text) => text.includes('tick 0'), 30_000, 'the first tick');
    const atFirstTick = (await platform.json('GET', `/v1/calls/${accepted.body.callNum}`)).body.status;
    expect(await logs.exited).toBe(0);
    const final = await platform.waitFinal(accepted.body.callNum);
    expect(['PENDING', 'RUNNING']).toContain(atFirstTick);
    expect(logs.out.stderr).toBe(final.stderr);
    expect(logs.out.stdout).toBe('bye\n');

    const failing = await platform.json('POST', '/invokeFunction', { funcName: 'ticks', params: { n: 1, fail: true } });
    const failed = runCli(platform.url, ['logs', '-f', String(failing.body.callNum)]);
    expect(await failed.exited).toBe(1);
    expect(failed.out.stderr).toContain('asked to fail');
    expect(failed.out.stderr).toMatch(new RegExp(`call ${failing.body.callNum} ended ERROR`));
  }, 60_000);
});

describe('followed logs with miniworkers as processes', () => {
  let platform: TestPlatform;

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_MINIWORKER_KIND: 'process' } });
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await platform?.stop();
  });

  test('a follow reaches a miniworker process while its call runs', async () => {
    const source = 'import sys, time\n\ndef handle(params):\n    for i in range(8):\n        print(f"step {i}", file=sys.stderr, flush=True)\n        time.sleep(0.25)\n    return i\n';
    expect((await platform.upload('python', 'steps', await packageOf({ 'handler.py': source }), 'p.tar.gz')).status).toBe(201);
    const n = (await platform.json('POST', '/invokeFunction', { funcName: 'steps', params: {} })).body.callNum as number;
    const follow = new Collector(`${platform.url}/v1/calls/${n}/logs?follow=true`);
    await follow.done;
    expect(follow.error).toBeUndefined();
    const final = await platform.waitFinal(n);
    expect(final.status).toBe('DONE');
    expect(follow.data('stderr').length).toBeGreaterThanOrEqual(2);
    expect(follow.data('stderr').map((d) => d.text).join('')).toBe(final.stderr);
    expect(follow.events.at(-1)!.event).toBe('end');
  }, 90_000);
});

describe('live events on a platform with users', () => {
  let platform: TestPlatform;

  beforeAll(async () => {
    platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_AUTH_USERS: `alice:${await hashPassword('s3cret')}` } });
    await platform.waitApi();
  }, 60_000);

  afterAll(async () => {
    await platform?.stop();
  });

  test('a stream needs the same credentials as every route', async () => {
    const anonymous = await fetch(`${platform.url}/v1/events`);
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json()).error.code).toBe('UNAUTHORIZED');
    const wrong = await fetch(`${platform.url}/v1/events`, { headers: { authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    const authorization = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
    const stream = await opened(new Collector(`${platform.url}/v1/events?types=runtime`, { authorization }));
    try {
      const registered = await fetch(`${platform.url}/v1/runtimes`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ ...PYTHON, name: 'authrt' }) });
      expect(registered.status).toBe(201);
      await until(async () => stream.data('runtime.registered').length, (k) => k >= 1, 10_000, 'the runtime event');
      expect(stream.error).toBeUndefined();
      expect(stream.data('runtime.registered')[0]).toMatchObject({ name: 'authrt', image: 'pythonruntime' });
    } finally {
      await stream.stop();
    }
  }, 30_000);
});
