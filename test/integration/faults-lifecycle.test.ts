import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tarGzOf } from '../helpers/archives';
import { TestPlatform, docker } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * The failures that broke the call lifecycle once, each on a platform of its own: db-service away or
 * hung past every retry bound, its disk full, the api down longer than the workers' reconnect pause,
 * a handler-mode miniworker killed. Each test ends by checking that every call it got accepted is
 * final (none lost, none stuck) and that no answered error became a call.
 */
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
const FINAL = ['DONE', 'ERROR', 'TIMEOUT'];

async function handlerPackage(source: string): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-lifecycle-fn-'));
  writeFileSync(path.join(dir, 'handler.py'), source);
  return tarGzOf(dir);
}

const NAP = 'import time\n\ndef handle(params):\n    time.sleep(float(params.get("s", 1)))\n    return "rested"\n';
const NOOP = 'def handle(params):\n    return params\n';

/** A platform with the python runtime and the nap and noop functions, and a record of what it accepted. */
async function platformWith(env: NodeJS.ProcessEnv, start?: (p: TestPlatform) => Promise<void>): Promise<{ platform: TestPlatform; accepted: Set<number> }> {
  const platform = start ? await TestPlatform.start({ env, services: [] }) : await TestPlatform.start({ env });
  if (start) await start(platform);
  expect((await platform.json('POST', '/registerRuntime', PYTHON)).status).toBeLessThan(300);
  expect((await platform.upload('python', 'nap', await handlerPackage(NAP))).status).toBe(201);
  expect((await platform.upload('python', 'noop', await handlerPackage(NOOP))).status).toBe(201);
  return { platform, accepted: new Set() };
}

async function invoke(
  platform: TestPlatform,
  accepted: Set<number>,
  funcName: string,
  params: unknown,
  options: { wait?: boolean; key?: string } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${platform.url}/invokeFunction${options.wait ? '?wait=true' : ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(options.key ? { 'idempotency-key': options.key } : {}) },
    body: JSON.stringify({ funcName, params }),
  });
  const body = await response.json();
  if (response.status === 200 || response.status === 202) accepted.add(body.callNum);
  return { status: response.status, body, headers: response.headers };
}

/** Every call in the store, through the paged REST listing. */
async function storedCalls(platform: TestPlatform): Promise<Array<{ callNum: number; status: string; funcName: string }>> {
  const all: Array<{ callNum: number; status: string; funcName: string }> = [];
  let cursor: string | undefined;
  do {
    const { status, body } = await platform.json('GET', `/v1/calls?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    expect(status).toBe(200);
    all.push(...body.calls);
    cursor = body.next ?? undefined;
  } while (cursor);
  return all;
}

/** Nothing lost, nothing stuck, nothing made from an answered error: the store holds exactly the accepted calls, all final. */
async function expectAllAcceptedFinal(platform: TestPlatform, accepted: Set<number>): Promise<void> {
  for (const n of accepted) expect(FINAL).toContain((await platform.waitFinal(n, 90_000)).status);
  const stored = await storedCalls(platform);
  const lost = [...accepted].filter((n) => !stored.some((c) => c.callNum === n));
  const unanswered = stored.filter((c) => !accepted.has(c.callNum)).map((c) => c.callNum);
  const stuck = stored.filter((c) => !FINAL.includes(c.status)).map((c) => c.callNum);
  expect({ lost, unanswered, stuck }).toEqual({ lost: [], unanswered: [], stuck: [] });
}

describe('db-service away longer than every retry bound (70 s)', () => {
  let platform: TestPlatform;
  let accepted: Set<number>;
  beforeAll(async () => {
    ({ platform, accepted } = await platformWith({ FAAS_WORKER_CAPACITY: '2' }));
  });
  afterAll(async () => platform?.stop());

  test('calls running through it end, answered 503s never become calls, idempotent retries run once, no slot leaks', async () => {
    const running = await Promise.all([0, 1].map((i) => invoke(platform, accepted, 'nap', { s: 3, i })));
    for (const r of running) expect(r.status).toBe(202);
    await until(async () => Promise.all(running.map(async (r) => (await platform.json('GET', `/call/${r.body.callNum}`)).body.status)), (s) => s.every((x) => x === 'RUNNING'), 120_000, 'both naps running');

    await platform.stopService('db', 'SIGKILL');
    const refused = [
      ...(await Promise.all([0, 1, 2].map((i) => invoke(platform, accepted, 'noop', { refused: i })))),
      ...(await Promise.all([0, 1, 2].map((i) => invoke(platform, accepted, 'noop', { keyed: i }, { key: `away-${i}` })))),
    ];
    for (const r of refused) expect(r).toMatchObject({ status: 503, body: { error: { code: 'DB_UNAVAILABLE' } } });
    const health = await platform.json('GET', '/health');
    expect(health.status).toBe(503);
    expect(health.body.reasons).toContain('db-service does not answer');
    // The outage itself is what is under test: it outlasts the 30 s + 30 s the final writes were once retried for.
    await new Promise((r) => setTimeout(r, 70_000));
    platform.spawn('db');
    await platform.waitHealthy(60_000);

    for (const r of running) expect(await platform.waitFinal(r.body.callNum, 60_000)).toMatchObject({ status: 'DONE', result: '"rested"' });
    // The keyed requests were answered 503: retried with the same keys they make new calls, each once.
    for (const i of [0, 1, 2]) {
      const again = await invoke(platform, accepted, 'noop', { keyed: i }, { key: `away-${i}`, wait: true });
      expect(again.status).toBe(200);
      expect(again.headers.get('idempotent-replayed')).toBeNull();
      expect(again.body).toMatchObject({ status: 'DONE' });
      const replay = await invoke(platform, accepted, 'noop', { keyed: i }, { key: `away-${i}` });
      expect(replay.body.callNum).toBe(again.body.callNum);
    }
    // Both slots are free again: two calls run at once.
    const pair = await Promise.all([0, 1].map((i) => invoke(platform, accepted, 'nap', { s: 1, pair: i }, { wait: true })));
    for (const r of pair) expect(r.body.status).toBe('DONE');
    const [a, b] = pair.map((r) => r.body);
    expect(Date.parse(a.startedAt) < Date.parse(b.endedAt) && Date.parse(b.startedAt) < Date.parse(a.endedAt)).toBe(true);
    await expectAllAcceptedFinal(platform, accepted);
  }, 300_000);
});

describe('db-service hung (SIGSTOP) for 12 s', () => {
  let platform: TestPlatform;
  let accepted: Set<number>;
  beforeAll(async () => {
    ({ platform, accepted } = await platformWith({ FAAS_WORKER_CAPACITY: '2' }));
  });
  afterAll(async () => platform?.stop());

  test('requests queued to a hung db-service are not applied after their answer, with or without a key', async () => {
    const db = platform.procs.get('db')!;
    db.kill('SIGSTOP');
    try {
      const refused = await Promise.all([
        ...[0, 1, 2].map((i) => invoke(platform, accepted, 'noop', { hung: i })),
        ...[0, 1].map((i) => invoke(platform, accepted, 'noop', { hungKeyed: i }, { key: `hung-${i}` })),
      ]);
      for (const r of refused) expect(r.status).toBe(503);
      // Held past the answers, so that what was queued to it is stale when it wakes.
      await new Promise((r) => setTimeout(r, 12_000));
    } finally {
      db.kill('SIGCONT');
    }
    await until(async () => (await invoke(platform, accepted, 'noop', { after: true }, { wait: true })).status, (s) => s === 200, 30_000, 'invoke working again');
    const replay = await invoke(platform, accepted, 'noop', { hungKeyed: 0 }, { key: 'hung-0', wait: true });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBeNull();
    await expectAllAcceptedFinal(platform, accepted);
    expect((await platform.json('GET', '/health')).body.db).toMatchObject({ connected: true, writable: true });
  }, 300_000);
});

describe('a full disk under db-service, then freed', () => {
  let platform: TestPlatform;
  let accepted: Set<number>;
  let mounted = '';
  beforeAll(async () => {
    ({ platform, accepted } = await platformWith({ FAAS_WORKER_CAPACITY: '2' }, async (p) => {
      mounted = path.join(p.dataDir, 'db');
      mkdirSync(mounted, { recursive: true });
      // A small disk of its own for the store (the suite runs as root, as CI does).
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mounted]);
      p.spawn('db');
      p.spawn('api');
      p.spawn('worker');
      await p.waitHealthy(60_000);
    }));
  });
  afterAll(async () => {
    // db-service lets go of its disk before the disk goes, and the disk before the folder is removed.
    for (const name of ['worker', 'api', 'db'] as const) await platform?.stopService(name);
    if (mounted) execFileSync('umount', ['-l', mounted]);
    await platform?.stop();
  });

  test('invoke answers a retryable 503, accepted calls end once space is back, and the store heals without a restart', async () => {
    const running = await invoke(platform, accepted, 'nap', { s: 4 });
    expect(running.status).toBe(202);
    await until(async () => (await platform.json('GET', `/call/${running.body.callNum}`)).body.status, (s) => s === 'RUNNING', 120_000, 'nap running');
    const filler = path.join(mounted, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=64'], { stdio: 'ignore' });
    } catch {
      /* dd stops at a full disk: that is the point */
    }
    const refused = await until(async () => invoke(platform, accepted, 'noop', { full: true }), (r) => r.status !== 202, 30_000, 'a refused invoke');
    expect(refused).toMatchObject({ status: 503, body: { error: { code: 'STORE_UNAVAILABLE' } } });
    const health = await platform.json('GET', '/health');
    expect(health.status).toBe(503);
    expect(health.body.reasons).toContain('db-service refuses writes');
    // The nap ends while the disk is full: its end waits for space rather than being dropped.
    await new Promise((r) => setTimeout(r, 5000));
    rmSync(filler);
    expect(await platform.waitFinal(running.body.callNum, 60_000)).toMatchObject({ status: 'DONE' });
    await until(async () => (await invoke(platform, accepted, 'noop', { freed: true }, { wait: true })).status, (s) => s === 200, 30_000, 'invoke working again');
    // Healed in place: the same db-service process.
    expect(platform.procs.get('db')!.alive).toBe(true);
    await expectAllAcceptedFinal(platform, accepted);
  }, 300_000);
});

describe('the api down longer than the workers’ reconnect pause', () => {
  let platform: TestPlatform;
  let accepted: Set<number>;
  beforeAll(async () => {
    // A short reconnect pause keeps the test short; the api's grace stays above it, as the README asks.
    ({ platform, accepted } = await platformWith({ FAAS_WORKER_CAPACITY: '3', FAAS_RECONNECT_MAX_MS: '6000', FAAS_RECOVERY_GRACE_MS: '20000' }));
  });
  afterAll(async () => platform?.stop());

  test('calls the worker still holds finish DONE after the api comes back; none ends orchestrator_restart', async () => {
    const naps = await Promise.all([0, 1, 2].map((i) => invoke(platform, accepted, 'nap', { s: 25, i })));
    await until(async () => Promise.all(naps.map(async (r) => (await platform.json('GET', `/call/${r.body.callNum}`)).body.status)), (s) => s.every((x) => x === 'RUNNING'), 120_000, 'three naps running');
    await platform.stopService('api', 'SIGKILL');
    // Down past the workers' longest reconnect pause, so that they come back only seconds after the api.
    await new Promise((r) => setTimeout(r, 9000));
    platform.spawn('api');
    await platform.waitApi();
    for (const r of naps) expect(await platform.waitFinal(r.body.callNum, 90_000)).toMatchObject({ status: 'DONE', result: '"rested"' });
    expect((await invoke(platform, accepted, 'noop', { after: true }, { wait: true })).body.status).toBe('DONE');
    await expectAllAcceptedFinal(platform, accepted);
  }, 300_000);
});

describe('a handler-mode miniworker killed mid-call', () => {
  let platform: TestPlatform;
  let accepted: Set<number>;
  beforeAll(async () => {
    ({ platform, accepted } = await platformWith({ FAAS_WORKER_CAPACITY: '1', FAAS_MINIWORKER_KIND: 'process' }));
  });
  afterAll(async () => platform?.stop());

  test('its call ends worker_lost and its warm container is removed at once', async () => {
    const nap = await invoke(platform, accepted, 'nap', { s: 60 });
    await until(async () => (await platform.json('GET', `/call/${nap.body.callNum}`)).body.status, (s) => s === 'RUNNING', 120_000, 'nap running');
    // The call runs in a container of its own or in a stem cell it was put into: either way one its miniworker drives.
    const driven = (await platform.containers()).filter((c) => c.Labels['io.faas.miniworker']);
    expect(driven.length).toBeGreaterThan(0);
    for (const c of driven) expect(c.Labels['io.faas.miniworker']).toMatch(/^mw-/);
    const worker = platform.procs.get('worker')!;
    const children = execFileSync('pgrep', ['-P', String(worker.pid)]).toString().trim().split('\n').map(Number);
    expect(children.length).toBeGreaterThan(0);
    for (const pid of children) process.kill(pid, 'SIGKILL');
    expect(await platform.waitFinal(nap.body.callNum, 30_000)).toMatchObject({ status: 'ERROR', reason: 'worker_lost' });
    const ids = new Set(driven.map((c) => c.Id));
    await until(() => platform.containers(), (now) => !now.some((c) => ids.has(c.Id)), 15_000, 'the dead miniworkers’ containers removed');
    for (const c of driven) await expect(docker.getContainer(c.Id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await invoke(platform, accepted, 'noop', { after: true }, { wait: true })).body.status).toBe('DONE');
    await expectAllAcceptedFinal(platform, accepted);
  }, 300_000);
});
