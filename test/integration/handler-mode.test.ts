import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { docker, TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

const TRICKY = path.resolve(__dirname, '..', 'fixtures', 'handlers', 'tricky');
const PROGRESS = path.resolve(__dirname, '..', 'fixtures', 'handlers', 'progress');
const FAKE_BOOTSTRAP = path.resolve(__dirname, '..', 'fixtures', 'handlers', 'fake-bootstrap');
const NODE_HELLO = path.resolve(__dirname, '..', '..', 'runtimes', 'node', 'hello');
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: 'pip3 install -r requirements.txt', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
const NODE = { name: 'node', image: 'noderuntime', path: '/ws', dependencies: '', run: 'node /opt/faas/handler.js', mode: 'handler' };

async function versionPackage(version: string): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-version-'));
  writeFileSync(path.join(dir, 'requirements.txt'), '');
  writeFileSync(path.join(dir, 'handler.py'), `n = 0\n\ndef handle(params):\n    global n\n    n += 1\n    return {"version": "${version}", "calls": n}\n`);
  return tarGzOf(dir);
}

async function register(platform: TestPlatform, runtime: string, name: string, data: Buffer, fields: Record<string, string> = {}): Promise<void> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('module', new Blob([data]), 'package.tar.gz');
  const response = await fetch(`${platform.url}/registerFunction/${runtime}/${name}`, { method: 'POST', body: form });
  expect(response.status).toBeLessThan(300);
}

const sync = async (platform: TestPlatform, funcName: string, params: unknown = {}) => (await platform.json('POST', '/invokeFunction?wait=true', { funcName, params })).body;

/** `{nested: [[[…]]]}`, `depth` levels in all. */
const deepParams = (depth: number) => {
  let value: unknown = [];
  for (let i = 2; i < depth; i++) value = [value];
  return { nested: value };
};

describe('handler mode and the warm pool', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_PRELOAD: 'runtime', FAAS_WORKER_CAPACITY: '4', FAAS_CALL_TIMEOUT_MS: '3000' } });
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
    expect((await platform.json('POST', '/registerRuntime', NODE)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test('a handler keeps its state between calls in one container, and its prints are the call log', async () => {
    await register(platform, 'python', 'tricky', await tarGzOf(TRICKY));
    const first = await sync(platform, 'tricky', { say: 'one' });
    const second = await sync(platform, 'tricky', { say: 'two' });
    expect(first.status).toBe('DONE');
    expect(JSON.parse(first.result)).toMatchObject({ calls: 1 });
    expect(JSON.parse(second.result)).toMatchObject({ calls: 2, host: JSON.parse(first.result).host });
    expect(first.stdout).toBe('call 1 says one\n');
    expect(second.stdout).toBe('call 2 says two\n');
  });

  test('an error raised by the handler ends that call ERROR and keeps the container', async () => {
    const failed = await sync(platform, 'tricky', { raise: true });
    expect(failed).toMatchObject({ status: 'ERROR', reason: 'handler_error' });
    expect(failed.error).toContain('asked to raise');
    expect(JSON.parse((await sync(platform, 'tricky')).result).calls).toBeGreaterThan(2);
  });

  const gone = async (host: string) => !(await platform.containers()).some((c) => c.Id.startsWith(host));

  test('a handler that crashes takes its container with it; the next call gets a fresh one', async () => {
    const before = JSON.parse((await sync(platform, 'tricky')).result).host;
    const crashed = await sync(platform, 'tricky', { crash: true });
    expect(crashed).toMatchObject({ status: 'ERROR', reason: 'handler_crashed', exitCode: 7 });
    expect(crashed.stderr).toContain('about to crash');
    await until(() => gone(before), (g) => g, 5000, 'the crashed container removed');
    const after = await sync(platform, 'tricky');
    expect(after.status).toBe('DONE');
    expect(JSON.parse(after.result)).toMatchObject({ calls: 1 });
    expect(JSON.parse(after.result).host).not.toBe(before);
  });

  test('a handler past its timeout ends TIMEOUT, its container is removed, and the next call runs', async () => {
    const before = JSON.parse((await sync(platform, 'tricky')).result).host;
    const slow = await sync(platform, 'tricky', { sleep: 30 });
    expect(slow).toMatchObject({ status: 'TIMEOUT', reason: 'timeout' });
    expect(await gone(before)).toBe(true);
    const next = JSON.parse((await sync(platform, 'tricky')).result);
    expect(next.calls).toBe(1);
    expect(next.host).not.toBe(before);
  });

  test('with preload "runtime" a stem cell is started for the runtime and takes the first call of a new function', async () => {
    const stems = await until(() => platform.containers(['io.faas.role=stem']), (c) => c.length > 0, 60_000, 'a stem cell');
    await register(platform, 'python', 'fromstem', await tarGzOf(TRICKY));
    // The function's image (its dependencies) is made at registration; the stem gets only the code.
    const version = (await platform.json('GET', '/v1/functions/fromstem')).body.version as string;
    await until(() => docker.listImages({ filters: { label: [`io.faas.platform=${platform.label}`, `io.faas.version=${version}`] } }), (images) => images.length > 0, 60_000, 'the function image');
    // A stem container exists before it is ready to take code, and the previous test's last call may
    // have just taken the stem: wait until a heartbeat sent after now says a python stem is ready.
    const since = Date.now();
    await until(
      async () => (await platform.json('GET', '/v1/workers')).body[0] as { lastSeen: string; stems: Array<{ runtime: string }> } | undefined,
      (w) => w !== undefined && Date.parse(w.lastSeen) > since && w.stems.some((s) => s.runtime === 'python'),
      60_000,
      'a ready stem cell',
    );
    const idleStems = (await platform.containers(['io.faas.role=stem'])).map((c) => c.Id);
    const first = JSON.parse((await sync(platform, 'fromstem')).result);
    expect(first.calls).toBe(1);
    expect(idleStems.some((id) => id.startsWith(first.host))).toBe(true);
    expect(stems.length).toBeGreaterThan(0);
    // A new stem replaces the one taken.
    await until(() => platform.containers(['io.faas.role=stem']), (c) => c.some((s) => !s.Id.startsWith(first.host)), 60_000, 'a new stem cell');
  });

  test('a new function version never runs in the old version’s container', async () => {
    await register(platform, 'python', 'versioned', await versionPackage('v1'));
    expect(JSON.parse((await sync(platform, 'versioned')).result)).toEqual({ version: 'v1', calls: 1 });
    expect(JSON.parse((await sync(platform, 'versioned')).result)).toEqual({ version: 'v1', calls: 2 });
    await register(platform, 'python', 'versioned', await versionPackage('v2'));
    expect(JSON.parse((await sync(platform, 'versioned')).result)).toEqual({ version: 'v2', calls: 1 });
  });

  test('the node runtime serves handler calls too', async () => {
    await register(platform, 'node', 'nodehello', await tarGzOf(NODE_HELLO));
    const one = await sync(platform, 'nodehello', { name: 'ada' });
    const two = await sync(platform, 'nodehello', { name: 'bob' });
    expect(JSON.parse(one.result)).toEqual({ hello: 'ada', calls: 1 });
    expect(JSON.parse(two.result)).toEqual({ hello: 'bob', calls: 2 });
    expect(two.stdout).toBe('hello called 2 times\n');
  });

  test('a node handler that writes progress without a newline ends DONE, the text in its logs', async () => {
    await register(platform, 'node', 'progress', await tarGzOf(PROGRESS));
    for (const step of [1, 2]) {
      const call = await sync(platform, 'progress', { step });
      expect({ status: call.status, result: call.result && JSON.parse(call.result), stdout: call.stdout, stderr: call.stderr }).toEqual({
        status: 'DONE',
        result: { done: true, step },
        stdout: 'progress 50%',
        stderr: 'child 75%',
      });
    }
  });

  test('params nested past FAAS_MAX_PARAMS_DEPTH (100) are refused with 400 before any call is made', async () => {
    const before = (await platform.json('GET', '/v1/calls?function=tricky&limit=1')).body.calls[0]?.callNum;
    const seed = await platform.json('POST', '/invokeFunction?wait=true', { funcName: 'tricky', params: deepParams(1500) });
    expect(seed.status).toBe(400);
    expect(seed.body.error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/deeper than 100 levels/) });
    const v1 = await platform.json('POST', '/v1/functions/tricky/calls?wait=true', { params: deepParams(101) });
    expect(v1.status).toBe(400);
    expect((await platform.json('POST', '/v1/functions/tricky/calls?wait=true', { params: deepParams(100) })).body.status).toBe('DONE');
    const calls = (await platform.json('GET', '/v1/calls?function=tricky&limit=2')).body.calls;
    // Only the call within the bound was made.
    expect(calls[0].params).toEqual(deepParams(100));
    expect(calls[1]?.callNum).toBe(before);
  });

  test("each call's stderr is its own, though stderr and the result travel apart (python and node)", async () => {
    const py = mkdtempSync(path.join(os.tmpdir(), 'faas-stderr-'));
    writeFileSync(path.join(py, 'requirements.txt'), '');
    writeFileSync(path.join(py, 'handler.py'), 'import sys\n\ndef handle(params):\n    print("err", params["n"], file=sys.stderr)\n    return params["n"]\n');
    const js = mkdtempSync(path.join(os.tmpdir(), 'faas-stderr-'));
    writeFileSync(path.join(js, 'handler.js'), 'exports.handle = (p) => { console.error("err", p.n); return p.n; };\n');
    await register(platform, 'python', 'pyerr', await tarGzOf(py));
    await register(platform, 'node', 'jserr', await tarGzOf(js));
    for (const fn of ['pyerr', 'jserr']) {
      for (let n = 0; n < 25; n++) {
        const call = await sync(platform, fn, { n });
        expect({ fn, n, status: call.status, result: call.result, stderr: call.stderr }).toEqual({ fn, n, status: 'DONE', result: String(n), stderr: `err ${n}\n` });
      }
    }
  });

  test('a large non-ASCII result and log arrive whole, though they cross chunk boundaries mid-character', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-utf8-'));
    writeFileSync(path.join(dir, 'requirements.txt'), '');
    writeFileSync(path.join(dir, 'handler.py'), 'import sys\n\ndef handle(params):\n    print("é🙂" * 30000, file=sys.stderr)\n    return "é" * 100001 + "🙂" * 20001\n');
    await register(platform, 'python', 'utf8', await tarGzOf(dir));
    const call = await sync(platform, 'utf8');
    expect(call.status).toBe('DONE');
    expect(JSON.parse(call.result)).toBe('é'.repeat(100001) + '🙂'.repeat(20001));
    expect(call.stderr).toBe(`${'é🙂'.repeat(30000)}\n`);
  });

  test('with preload "none" each call gets its own container, removed after it', async () => {
    await register(platform, 'python', 'oneshot', await tarGzOf(TRICKY), { preload: 'none' });
    expect(JSON.parse((await sync(platform, 'oneshot')).result).calls).toBe(1);
    expect(JSON.parse((await sync(platform, 'oneshot')).result).calls).toBe(1);
    await until(() => platform.containers(['io.faas.function=oneshot']), (c) => c.length === 0, 5000, 'no oneshot container');
  });
});

describe('params deeper than a runtime parses, with the api bound raised', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    // One miniworker, so one warm container: the call after the failed one must be served by it.
    platform = await TestPlatform.start({ env: { FAAS_MAX_PARAMS_DEPTH: '5000', FAAS_WORKER_CAPACITY: '1' } });
    expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBe(201);
  });
  afterAll(async () => platform?.stop());

  test('a python handler given params nested 1,500 deep ends ERROR with a clear message; the warm container serves the next call', async () => {
    await register(platform, 'python', 'deep', await tarGzOf(TRICKY));
    const first = await sync(platform, 'deep');
    expect(first.status).toBe('DONE');
    const deep = await sync(platform, 'deep', deepParams(1500));
    expect(deep).toMatchObject({ status: 'ERROR', reason: 'handler_error' });
    expect(deep.error).toMatch(/^params could not be read: nested deeper than the python runtime can parse/);
    const next = await sync(platform, 'deep', { say: 'after' });
    expect(next.status).toBe('DONE');
    expect(JSON.parse(next.result)).toMatchObject({ calls: 2, host: JSON.parse(first.result).host });
    expect(next.coldStart).toBe(false);
  });

  test.each([
    ['1', /speaks a protocol from before versioning, this platform speaks version 2: rebuild the runtime image/],
    ['3', /speaks protocol version 3, this platform speaks version 2: rebuild the runtime image/],
  ])('a bootstrap that says ready in protocol version %s is refused at once with a load error saying so', async (version, message) => {
    const runtime = `oldproto${version}`;
    expect((await platform.json('POST', '/registerRuntime', { ...PYTHON, name: runtime, run: `python3 /ws/fake_bootstrap.py ${version}` })).status).toBe(201);
    await register(platform, runtime, `fake${version}`, await tarGzOf(FAKE_BOOTSTRAP), { preload: 'none' });
    const call = await sync(platform, `fake${version}`);
    expect(call).toMatchObject({ status: 'ERROR', reason: 'load_failed' });
    expect(call.error).toMatch(message);
  });
});

describe('preload policy "function", keep-alive and the per-node cap', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    // 40 calls of 5 functions through 3 containers start a container for most calls: on a slow engine
    // that passes the default 30 s a synchronous request waits, which this describe does not test.
    platform = await TestPlatform.start({ env: { FAAS_PRELOAD: 'function', FAAS_WORKER_CAPACITY: '3', FAAS_KEEP_ALIVE_MS: '2000', FAAS_SCALE_UP_AFTER_MS: '0', FAAS_WAIT_TIMEOUT_MS: '120000' } });
    await platform.json('POST', '/registerRuntime', PYTHON);
  });
  afterAll(async () => platform?.stop());

  test('a container is ready before the first call, and the first call uses it', async () => {
    await register(platform, 'python', 'eager', await tarGzOf(TRICKY));
    const [ready] = await until(() => platform.containers(['io.faas.function=eager', 'io.faas.role=warm']), (c) => c.length === 1, 60_000, 'a warm eager container');
    const workers = (await platform.json('GET', '/workers')).body;
    await until(async () => (await platform.json('GET', '/workers')).body[0].warm.map((w: { function: string }) => w.function), (f: string[]) => f.includes('eager'), 5000, 'eager listed warm');
    void workers;
    const first = await sync(platform, 'eager');
    expect(JSON.parse(first.result).calls).toBe(1);
    const after = await platform.containers(['io.faas.function=eager']);
    expect(after.map((c) => c.Id)).toEqual([ready!.Id]);
  });

  test('a warm container unused past its keep-alive is removed', async () => {
    await sync(platform, 'eager');
    await until(() => platform.containers(['io.faas.function=eager']), (c) => c.length === 0, 15_000, 'eager container removed');
  });

  test('the cap on containers per node holds under load, and every call ends DONE', async () => {
    const names = ['capa', 'capb', 'capc', 'capd', 'cape'];
    for (const name of names) await register(platform, 'python', name, await tarGzOf(TRICKY), { preload: 'runtime' });
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, (await platform.containers()).length);
        // A sampling period, not a wait for anything.
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => sync(platform, names[i % names.length]!, { i })));
    sampling = false;
    await sampler;
    expect(results.map((r) => r.status)).toEqual(Array(40).fill('DONE'));
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(3);
  });
});
