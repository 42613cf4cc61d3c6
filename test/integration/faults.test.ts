import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as zmq from 'zeromq';
import { encodeRequest } from '../../protocol/envelope';
import { tarGzOf } from '../helpers/archives';
import { docker, TestPlatform } from '../helpers/platform';
import { until } from '../helpers/until';

/**
 * Faults injected into a running platform of three workers. Each scenario is one test: it injects
 * its faults (counted in `tally.faults`) and invokes through `invoke`, which records every call the
 * platform accepted. After each scenario, every accepted call must reach a final state (lost 0) and
 * no call may stay PENDING or RUNNING. The suite ends by printing one line: faults injected, calls
 * accepted, final, lost.
 */
const PYTHON = { name: 'python', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 /opt/faas/handler.py', mode: 'handler' };
const FINAL = ['DONE', 'ERROR', 'TIMEOUT'];
const tally = { faults: 0, accepted: new Set<number>(), final: 0 };

async function handlerPackage(source: string): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faas-fault-fn-'));
  writeFileSync(path.join(dir, 'handler.py'), source);
  return tarGzOf(dir);
}

describe('faults on a platform of three workers', () => {
  let platform: TestPlatform;

  const invoke = async (funcName: string, params: unknown, wait = false) => {
    const response = await fetch(`${platform.url}/invokeFunction${wait ? '?wait=true' : ''}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ funcName, params }),
    });
    const body = await response.json();
    if (response.status === 202 || response.status === 200) tally.accepted.add(body.callNum);
    return { status: response.status, body };
  };
  const workerCount = async () => ((await platform.json('GET', '/workers')).body as unknown[]).length;
  const workers = (n: number, timeoutMs: number, what: string) => until(workerCount, (count) => count === n, timeoutMs, what);
  const storedCalls = async () => Object.values((await platform.json('GET', '/calls')).body as Record<string, { callNum: number; status: string }>);

  /**
   * Every call accepted during the scenario ends (waiting for them a while), and no call made during
   * it, accepted or not, is left PENDING or RUNNING. Calls are told apart by number: those above the
   * highest number stored before the scenario began.
   */
  async function expectNoneLost(since: number, timeoutMs: number): Promise<void> {
    const ours = (calls: Array<{ callNum: number; status: string }>) => calls.filter((c) => c.callNum > since);
    const accepted = [...tally.accepted].filter((n) => n > since);
    const settled = (calls: Array<{ callNum: number; status: string }>) => {
      const final = new Set(ours(calls).filter((c) => FINAL.includes(c.status)).map((c) => c.callNum));
      return { lost: accepted.filter((n) => !final.has(n)), stuck: ours(calls).filter((c) => !FINAL.includes(c.status)) };
    };
    let calls = await storedCalls();
    try {
      calls = await until(storedCalls, (cs) => settled(cs).lost.length === 0 && settled(cs).stuck.length === 0, timeoutMs, 'every call final');
    } catch {
      /* the assertion below says which calls */
    }
    expect(settled(calls)).toEqual({ lost: [], stuck: [] });
  }

  beforeAll(async () => {
    platform = await TestPlatform.start({ env: { FAAS_WORKER_CAPACITY: '4', FAAS_PRELOAD: 'function', FAAS_SCHEDULER: 'least-loaded' } });
    platform.spawnWorker('b');
    platform.spawnWorker('c');
    await workers(3, 30_000, 'three workers');
    await platform.json('POST', '/registerRuntime', PYTHON);
    await platform.upload('python', 'noop', await handlerPackage('def handle(params):\n    return params\n'));
    await platform.upload('python', 'nap', await handlerPackage('import time\n\ndef handle(params):\n    time.sleep(float(params.get("s", 1)))\n    return "rested"\n'));
  });

  // Each scenario, whatever it injected, leaves no call behind.
  let mark = 0;
  beforeEach(async () => {
    mark = Math.max(0, ...(await storedCalls()).map((c) => c.callNum));
  });
  afterEach(async () => expectNoneLost(mark, 90_000), 120_000);

  afterAll(async () => {
    if (platform) {
      try {
        const final = new Set((await storedCalls()).filter((c) => FINAL.includes(c.status)).map((c) => c.callNum));
        tally.final = [...tally.accepted].filter((n) => final.has(n)).length;
      } finally {
        await platform.stop();
      }
    }
    process.stdout.write(`faults: ${tally.faults} injected, calls accepted ${tally.accepted.size}, final ${tally.final}, lost ${tally.accepted.size - tally.final}\n`);
  });

  test('1,000 concurrent invokes across three workers all end, counted exactly, none RUNNING', async () => {
    const nums: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < 1000) {
          const i = next++;
          const { status, body } = await invoke('noop', { i });
          expect(status).toBe(202);
          nums.push(body.callNum);
        }
      }),
    );
    expect(new Set(nums).size).toBe(1000);
    const nodes = new Set<string>();
    for (const n of nums) {
      const call = await platform.waitFinal(n, 120_000);
      expect(call).toMatchObject({ status: 'DONE' });
      expect(JSON.parse(call.result)).toHaveProperty('i');
      nodes.add(call.node);
    }
    expect(nodes.size).toBeGreaterThan(1);
    const calls = Object.values((await platform.json('GET', '/calls')).body as Record<string, { status: string }>);
    expect(calls.filter((c) => c.status === 'RUNNING' || c.status === 'PENDING')).toEqual([]);
  });

  test('a worker stopped (SIGSTOP) for 10 s is expired, its calls end, and after SIGCONT it serves again', async () => {
    const worker = platform.extraWorkers.get('b')!;
    const before = await Promise.all(Array.from({ length: 12 }, (_, i) => invoke('nap', { s: 0.5, i })));
    worker.kill('SIGSTOP');
    tally.faults += 1;
    const during = await Promise.all(Array.from({ length: 12 }, (_, i) => invoke('noop', { during: i })));
    await workers(2, 10_000, 'the stopped worker expired');
    // Not a wait for anything: the fault is a worker that stays stopped well after it was expired.
    await new Promise((r) => setTimeout(r, 6000));
    worker.kill('SIGCONT');
    await workers(3, 20_000, 'the worker back');
    for (const r of [...before, ...during]) {
      const call = await platform.waitFinal(r.body.callNum, 60_000);
      expect(['DONE', 'ERROR node_lost']).toContain(call.status === 'DONE' ? 'DONE' : `${call.status} ${call.reason}`);
    }
    expect((await invoke('noop', { after: true }, true)).body.status).toBe('DONE');
  });

  test('kill -9 of db-service right after an acknowledged call: the call survives and ends; meanwhile invoke answers 503, not a hang', async () => {
    const accepted = await invoke('nap', { s: 0.2 });
    expect(accepted.status).toBe(202);
    await platform.stopService('db', 'SIGKILL');
    tally.faults += 1;
    const started = Date.now();
    const refused = await invoke('noop', {});
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('DB_UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(15_000);
    platform.spawn('db');
    const call = await platform.waitFinal(accepted.body.callNum, 60_000);
    expect(call.status).toBe('DONE');
    await until(() => invoke('noop', {}, true), (r) => r.status === 200, 30_000, 'invoke working again');
  });

  test('kill -9 of a worker mid-call: its calls end ERROR node_lost, an idempotent function’s call runs again', async () => {
    const form = new FormData();
    form.append('idempotent', 'true');
    form.append('module', new Blob([await handlerPackage('import time\n\ndef handle(params):\n    time.sleep(float(params.get("s", 1)))\n    return "again"\n')]), 'p.tar.gz');
    expect((await fetch(`${platform.url}/registerFunction/python/napi`, { method: 'POST', body: form })).status).toBe(201);
    // Its image first (made at registration): the calls of both functions then start together. The three
    // nodes share this machine's engine and the image's name: whichever node tags it first, the others use it.
    const version = (await platform.json('GET', '/v1/functions/napi')).body.version as string;
    await until(
      () => docker.listImages({ filters: { label: [`io.faas.platform=${platform.label}`, `io.faas.version=${version}`] } }),
      (images) => images.some((i) => (i.RepoTags ?? []).some((tag) => tag !== '<none>:<none>')),
      120_000,
      'the napi image, tagged',
    );
    const plain = await Promise.all(Array.from({ length: 6 }, () => invoke('nap', { s: 6 })));
    const safe = await Promise.all(Array.from({ length: 6 }, () => invoke('napi', { s: 3 })));
    const all = [...plain, ...safe].map((r) => r.body.callNum as number);
    const runningOnC = async () => (await Promise.all(all.map(async (n) => (await platform.json('GET', `/call/${n}`)).body))).filter((c) => c.status === 'RUNNING' && c.node.endsWith('-c'));
    const onC = await until(runningOnC, (cs) => cs.some((c) => c.funcName === 'napi') && cs.some((c) => c.funcName === 'nap'), 60_000, 'calls of both functions running on node c');
    await platform.stopWorker('c', 'SIGKILL');
    tally.faults += 1;
    for (const c of onC) {
      const call = await platform.waitFinal(c.callNum, 60_000);
      if (c.funcName === 'nap') expect(call).toMatchObject({ status: 'ERROR', reason: 'node_lost' });
      else expect(call).toMatchObject({ status: 'DONE', attempts: 2, result: '"again"' });
    }
    platform.spawnWorker('c');
    await workers(3, 30_000, 'worker c back');
    for (const n of all) expect(['DONE', 'ERROR']).toContain((await platform.waitFinal(n, 60_000)).status);
  }, 300_000);

  test('a rogue peer sending garbage and an oversized frame is dropped; the services stay up', async () => {
    for (const endpoint of [platform.env.FAAS_WORKER_ENDPOINT!, platform.env.FAAS_DB_ENDPOINT!]) {
      // A linger, so that closing the socket sends what is queued instead of dropping it.
      const rogue = new zmq.Dealer({ linger: 5000, receiveTimeout: 15_000 });
      rogue.connect(endpoint);
      await rogue.send('not json at all');
      await rogue.send(JSON.stringify({ v: 99, id: 'x', msgType: 'hello', content: {} }));
      await rogue.send(JSON.stringify({ v: 1, id: 'x', msgType: 'createCall', content: { funcName: 42 } }));
      await rogue.send([Buffer.from('two'), Buffer.from('frames')]);
      tally.faults += 4;
      if (endpoint === platform.env.FAAS_DB_ENDPOINT) {
        // db-service reads one peer's frames in order: an answer to this ping means it read the garbage and lives on.
        // (Answers to the garbage itself, such as a refusal of the bad createCall, may come first.)
        await rogue.send(encodeRequest('after-garbage', 'ping', {}));
        let reply: { id?: string; ok?: boolean };
        do reply = JSON.parse((await rogue.receive())[0]!.toString());
        while (reply.id !== 'after-garbage');
        expect(reply).toMatchObject({ id: 'after-garbage', ok: true });
      }
      // Past the frame cap: the peer is cut off, nothing is answered.
      await rogue.send(Buffer.alloc(17 * 1024 * 1024, 0x7b));
      tally.faults += 1;
      rogue.close();
    }
    for (const name of ['db', 'api', 'worker'] as const) expect({ name, alive: platform.procs.get(name)!.alive }).toEqual({ name, alive: true });
    expect((await platform.json('GET', '/health')).status).toBe(200);
    expect((await invoke('noop', { still: 'up' }, true)).body.status).toBe('DONE');
  });
});
